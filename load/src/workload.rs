//! What to send: operation mix, key choice, key names, values, and key-to-server sharding.
//!
//! Values are a pure function of (key index, length): any run can check a value that
//! any earlier run wrote, whatever value size that run used, and a value written for
//! one key or cut short is recognised as wrong. Nothing here allocates per request.

use std::fmt;

/// One kind of request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Get,
    Put,
    Del,
    Cas,
    Ping,
}

impl Op {
    pub const ALL: [Op; 5] = [Op::Get, Op::Put, Op::Del, Op::Cas, Op::Ping];

    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Put => "put",
            Op::Del => "del",
            Op::Cas => "cas",
            Op::Ping => "ping",
        }
    }

    fn parse(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == s)
    }
}

/// Small, fast, seedable generator (SplitMix64). Quality is ample for picking keys; a
/// crate would add a dependency for what is four lines.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[0, n)`, by multiply-shift (bias below 2^-64 * n).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// The SplitMix64 finaliser: a strong 64-bit mixer.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Weighted operation mix, e.g. `get=9,put=1`.
#[derive(Clone, Debug, PartialEq)]
pub struct Mix {
    /// Cumulative weights, in the order of `ops`.
    cumulative: Vec<(u64, Op)>,
    total: u64,
}

impl Mix {
    pub fn parse(s: &str) -> Result<Mix, String> {
        let mut cumulative = Vec::new();
        let mut total = 0u64;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("mix entry {part:?} is not NAME=WEIGHT"))?;
            let op = Op::parse(name.trim())
                .ok_or_else(|| format!("unknown operation {name:?} (get, put, del, cas, ping)"))?;
            let weight: u64 = weight
                .trim()
                .parse()
                .map_err(|_| format!("weight {weight:?} of {name} is not a whole number"))?;
            if cumulative.iter().any(|&(_, o)| o == op) {
                return Err(format!("{name} appears twice in the mix"));
            }
            if weight > 0 {
                total += weight;
                cumulative.push((total, op));
            }
        }
        if total == 0 {
            return Err("the mix has no operation with a positive weight".into());
        }
        Ok(Mix { cumulative, total })
    }

    pub fn pick(&self, rng: &mut Rng) -> Op {
        let x = rng.below(self.total);
        for &(upto, op) in &self.cumulative {
            if x < upto {
                return op;
            }
        }
        self.cumulative[self.cumulative.len() - 1].1
    }

    pub fn contains(&self, op: Op) -> bool {
        self.cumulative.iter().any(|&(_, o)| o == op)
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut prev = 0;
        for (i, &(upto, op)) in self.cumulative.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}={}", op.name(), upto - prev)?;
            prev = upto;
        }
        Ok(())
    }
}

/// How key indices are drawn.
#[derive(Clone, Debug, PartialEq)]
pub enum KeyDist {
    Uniform,
    /// Every key in order, each thread taking every n-th: `--requests` equal to
    /// `--keys` writes each key exactly once (a preload).
    Sequential,
    /// Zipf with this exponent: rank 1 (key 0) is the hottest.
    Zipf(f64),
}

impl KeyDist {
    pub fn parse(s: &str) -> Result<KeyDist, String> {
        if s == "uniform" {
            return Ok(KeyDist::Uniform);
        }
        if s == "sequential" {
            return Ok(KeyDist::Sequential);
        }
        if let Some(e) = s.strip_prefix("zipf:") {
            let e: f64 = e
                .parse()
                .map_err(|_| format!("zipf exponent {e:?} is not a number"))?;
            if !(e.is_finite() && e > 0.0) {
                return Err("zipf exponent must be positive".into());
            }
            return Ok(KeyDist::Zipf(e));
        }
        Err(format!(
            "key distribution {s:?} is not uniform or zipf:EXPONENT"
        ))
    }
}

impl fmt::Display for KeyDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyDist::Uniform => f.write_str("uniform"),
            KeyDist::Sequential => f.write_str("sequential"),
            KeyDist::Zipf(e) => write!(f, "zipf:{e}"),
        }
    }
}

/// Draws key indices in `[0, keys)`. Each thread has its own.
#[derive(Clone, Debug)]
pub enum KeyPicker {
    Uniform(u64),
    /// Next key, step (the thread count), key count.
    Sequential {
        next: u64,
        step: u64,
        keys: u64,
    },
    Zipf(Zipf),
}

impl KeyPicker {
    /// The picker of thread `thread` of `threads`.
    pub fn new(dist: &KeyDist, keys: u64, thread: usize, threads: usize) -> KeyPicker {
        match dist {
            KeyDist::Uniform => KeyPicker::Uniform(keys),
            KeyDist::Sequential => KeyPicker::Sequential {
                next: thread as u64 % keys,
                step: threads as u64,
                keys,
            },
            KeyDist::Zipf(e) => KeyPicker::Zipf(Zipf::new(keys, *e)),
        }
    }

    pub fn pick(&mut self, rng: &mut Rng) -> u64 {
        match self {
            KeyPicker::Uniform(n) => rng.below(*n),
            KeyPicker::Sequential { next, step, keys } => {
                let k = *next;
                *next = (k + *step) % *keys;
                k
            }
            KeyPicker::Zipf(z) => z.sample(rng) - 1,
        }
    }
}

/// Zipf over ranks `1..=n` by rejection-inversion (Hörmann and Derflinger, 1996):
/// constant time and memory per sample whatever `n`, where the table-based method
/// would need `n` floats and the zeta method an O(n) setup.
#[derive(Clone, Debug)]
pub struct Zipf {
    n: f64,
    s: f64,
    h_x1: f64,
    h_n: f64,
    threshold: f64,
}

impl Zipf {
    pub fn new(n: u64, s: f64) -> Zipf {
        assert!(n >= 1 && s > 0.0);
        let mut z = Zipf {
            n: n as f64,
            s,
            h_x1: 0.0,
            h_n: 0.0,
            threshold: 0.0,
        };
        z.h_x1 = z.big_h(1.5) - 1.0;
        z.h_n = z.big_h(z.n + 0.5);
        z.threshold = 2.0 - z.big_h_inv(z.big_h(2.5) - z.h(2.0));
        z
    }

    fn h(&self, x: f64) -> f64 {
        (-self.s * x.ln()).exp()
    }

    /// Integral of `h`, shifted so that it is finite for s = 1.
    fn big_h(&self, x: f64) -> f64 {
        let log_x = x.ln();
        helper2((1.0 - self.s) * log_x) * log_x
    }

    fn big_h_inv(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.s)).max(-1.0);
        (helper1(t) * x).exp()
    }

    pub fn sample(&self, rng: &mut Rng) -> u64 {
        loop {
            let u = self.h_n + rng.next_f64() * (self.h_x1 - self.h_n);
            let x = self.big_h_inv(u);
            let k = x.round().clamp(1.0, self.n);
            if k - x <= self.threshold || u >= self.big_h(k + 0.5) - self.h(k) {
                return k as u64;
            }
        }
    }
}

/// `ln(1 + x) / x`, accurate near 0.
fn helper1(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// `(exp(x) - 1) / x`, accurate near 0.
fn helper2(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x))
    }
}

/// Length of a key name: `key:` and twelve digits, as redis-benchmark names them.
pub const KEY_LEN: usize = 16;

/// Writes `key:` and the index in twelve digits into `out`.
pub fn key_name(index: u64, out: &mut [u8; KEY_LEN]) {
    out[..4].copy_from_slice(b"key:");
    let mut n = index;
    for slot in out[4..].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Value sizes: one fixed size, or a range in which each key has its own size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueSize {
    pub min: usize,
    pub max: usize,
}

impl ValueSize {
    pub fn parse(s: &str) -> Result<ValueSize, String> {
        let num = |t: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|_| format!("value size {t:?} is not a whole number of bytes"))
        };
        let (min, max) = match s.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(s)?, num(s)?),
        };
        if min > max {
            return Err(format!("value size range {s:?} is empty"));
        }
        Ok(ValueSize { min, max })
    }

    /// The size this key's values have: derived from the key, so a range still gives
    /// every key one size across runs.
    pub fn for_key(&self, index: u64) -> usize {
        let span = (self.max - self.min) as u64 + 1;
        self.min + (mix64(index ^ 0x005E_ED0F_5A1E) % span) as usize
    }
}

impl fmt::Display for ValueSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}-{}", self.min, self.max)
        }
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Seed of the byte stream for a value of `len` bytes under key `index`: depends on
/// both, so a value of another key, or cut short, does not match.
fn value_seed(index: u64, len: usize) -> u64 {
    mix64(index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (len as u64).rotate_left(32))
}

/// Appends the value of key `index` with `len` bytes (printable, so text protocols
/// and people can read it).
pub fn fill_value(index: u64, len: usize, out: &mut Vec<u8>) {
    let seed = value_seed(index, len);
    let mut word = 0u64;
    for i in 0..len {
        if i % 10 == 0 {
            word = mix64(seed ^ (i as u64 / 10));
        }
        out.push(ALPHABET[(word & 63) as usize]);
        word >>= 6;
    }
}

/// True when `value` is exactly what [`fill_value`] writes for key `index` at this
/// length. Any length is accepted, since an earlier run may have used another size.
pub fn check_value(index: u64, value: &[u8]) -> bool {
    let seed = value_seed(index, value.len());
    let mut word = 0u64;
    for (i, &b) in value.iter().enumerate() {
        if i % 10 == 0 {
            word = mix64(seed ^ (i as u64 / 10));
        }
        if b != ALPHABET[(word & 63) as usize] {
            return false;
        }
        word >>= 6;
    }
    true
}

/// Consistent hashing over servers, as memcached clients shard (ketama-like): each
/// server owns many points on a 64-bit ring, and a key goes to the first point at or
/// after its hash. Adding a server moves only about 1/n of the keys.
#[derive(Clone, Debug)]
pub struct Ring {
    points: Vec<(u64, usize)>,
}

const POINTS_PER_SERVER: u64 = 160;

impl Ring {
    /// A ring over servers named by `names` (their addresses, so the mapping is the
    /// same in every run).
    pub fn new<S: AsRef<str>>(names: &[S]) -> Ring {
        let mut points = Vec::with_capacity(names.len() * POINTS_PER_SERVER as usize);
        for (server, name) in names.iter().enumerate() {
            let base = fnv1a(name.as_ref().as_bytes());
            for p in 0..POINTS_PER_SERVER {
                points.push((mix64(base ^ p.wrapping_mul(0xA24B_AED4_963E_E407)), server));
            }
        }
        points.sort_unstable();
        Ring { points }
    }

    /// The server that owns key `index`.
    pub fn server_for(&self, index: u64) -> usize {
        if self.points.len() <= POINTS_PER_SERVER as usize {
            return 0;
        }
        let mut name = [0u8; KEY_LEN];
        key_name(index, &mut name);
        let h = mix64(fnv1a(&name));
        let i = self.points.partition_point(|&(p, _)| p < h);
        self.points[i % self.points.len()].1
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_named_like_redis_benchmark() {
        let mut k = [0u8; KEY_LEN];
        key_name(42, &mut k);
        assert_eq!(&k, b"key:000000000042");
        key_name(999_999_999_999, &mut k);
        assert_eq!(&k, b"key:999999999999");
    }

    #[test]
    fn values_check_only_for_their_key_and_length() {
        let mut v = Vec::new();
        fill_value(7, 100, &mut v);
        assert_eq!(v.len(), 100);
        assert!(check_value(7, &v));
        assert!(!check_value(8, &v));
        assert!(!check_value(7, &v[..99]));
        let mut w = v.clone();
        w[50] ^= 1;
        assert!(!check_value(7, &w));
        let mut other = Vec::new();
        fill_value(7, 64, &mut other);
        assert!(check_value(7, &other));
        assert_ne!(&v[..64], &other[..]);
    }

    #[test]
    fn ranged_sizes_are_fixed_per_key_and_in_range() {
        let vs = ValueSize::parse("64-1024").unwrap();
        let sizes: Vec<usize> = (0..1000).map(|i| vs.for_key(i)).collect();
        assert!(sizes.iter().all(|&s| (64..=1024).contains(&s)));
        assert!(sizes.iter().any(|&s| s < 200) && sizes.iter().any(|&s| s > 900));
        assert_eq!(vs.for_key(5), vs.for_key(5));
        assert_eq!(ValueSize::parse("64").unwrap().for_key(123), 64);
        assert!(ValueSize::parse("10-5").is_err());
    }

    #[test]
    fn mix_follows_its_weights() {
        let mix = Mix::parse("get=9,put=1").unwrap();
        assert_eq!(mix.to_string(), "get=9,put=1");
        let mut rng = Rng::new(1);
        let gets = (0..100_000)
            .filter(|_| mix.pick(&mut rng) == Op::Get)
            .count();
        assert!((89_000..91_000).contains(&gets), "{gets}");
        assert!(Mix::parse("get=0").is_err());
        assert!(Mix::parse("fly=1").is_err());
        assert!(Mix::parse("get=1,get=2").is_err());
        assert!(!mix.contains(Op::Cas));
    }

    #[test]
    fn zipf_ranks_follow_the_power_law() {
        let z = Zipf::new(1000, 0.99);
        let mut rng = Rng::new(3);
        let mut counts = vec![0u64; 1001];
        for _ in 0..400_000 {
            let k = z.sample(&mut rng);
            assert!((1..=1000).contains(&k));
            counts[k as usize] += 1;
        }
        // P(1)/P(2) = 2^0.99 and P(1)/P(10) = 10^0.99.
        let r12 = counts[1] as f64 / counts[2] as f64;
        let r110 = counts[1] as f64 / counts[10] as f64;
        assert!((r12 - 2f64.powf(0.99)).abs() < 0.1, "{r12}");
        assert!((r110 - 10f64.powf(0.99)).abs() < 0.8, "{r110}");
        assert!(counts[1000] > 0);
    }

    #[test]
    fn zipf_with_exponent_one_and_one_key_work() {
        let mut rng = Rng::new(9);
        let z = Zipf::new(100, 1.0);
        assert!((0..1000).all(|_| (1..=100).contains(&z.sample(&mut rng))));
        let one = Zipf::new(1, 0.99);
        assert!((0..100).all(|_| one.sample(&mut rng) == 1));
    }

    #[test]
    fn uniform_keys_cover_the_range() {
        let mut p = KeyPicker::new(&KeyDist::parse("uniform").unwrap(), 10, 0, 1);
        let mut rng = Rng::new(5);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            seen[p.pick(&mut rng) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert!(KeyDist::parse("zipf:x").is_err());
        assert_eq!(KeyDist::parse("zipf:0.99").unwrap(), KeyDist::Zipf(0.99));
    }

    #[test]
    fn sequential_threads_cover_every_key_once() {
        let dist = KeyDist::parse("sequential").unwrap();
        let mut rng = Rng::new(1);
        let mut seen = vec![0u32; 10];
        for t in 0..3 {
            let mut p = KeyPicker::new(&dist, 10, t, 3);
            // Thread t's share of 10 requests over 3 threads.
            for _ in 0..(10 / 3 + usize::from(t < 10 % 3)) {
                seen[p.pick(&mut rng) as usize] += 1;
            }
        }
        assert!(seen.iter().all(|&n| n == 1), "{seen:?}");
    }

    #[test]
    fn ring_spreads_keys_and_moves_few_when_a_server_joins() {
        let two = Ring::new(&["a:1", "b:2"]);
        let three = Ring::new(&["a:1", "b:2", "c:3"]);
        let n = 30_000u64;
        let on_a = (0..n).filter(|&i| two.server_for(i) == 0).count() as f64 / n as f64;
        assert!((0.35..0.65).contains(&on_a), "{on_a}");
        // Keys either stay on their server or move to the new one.
        let moved = (0..n)
            .filter(|&i| two.server_for(i) != three.server_for(i))
            .inspect(|&i| assert_eq!(three.server_for(i), 2))
            .count() as f64
            / n as f64;
        assert!((0.2..0.5).contains(&moved), "{moved}");
        assert!((0..100).all(|i| Ring::new(&["x"]).server_for(i) == 0));
    }
}
