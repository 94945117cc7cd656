//! What surrounds a push run: the idle subscriptions that match nothing, the stalled
//! subscribers that never read, and those stalled watchers reading at last.

use super::wire::{Incoming, Wire};
use super::{read_more, Workload, DRAIN, SUBJECT, TICK, WATCH_PREFIX};
use crate::clock::now_ns;
use crate::dialect::Protocol;
use crate::settings::{Error, Settings};
use bytes::BytesMut;
use std::io::{self, Write};
use std::net::TcpStream;

/// Opens `--idle-connections` connections holding `--idle-subscriptions` prefixes that
/// match nothing the run sends, all confirmed before it starts.
pub(super) fn idle_subscriptions(
    settings: &Settings,
    connect: &dyn Fn(&str) -> Result<TcpStream, Error>,
) -> Result<Vec<TcpStream>, Error> {
    let (n, conns) = (
        settings.idle_subscriptions,
        settings.idle_connections.max(1),
    );
    if n == 0 {
        return Ok(Vec::new());
    }
    if settings.protocol != Protocol::Switchboard {
        return Err(Error::Usage(
            "--idle-subscriptions needs --protocol switchboard".into(),
        ));
    }
    let conns = conns.min(n);
    let mut streams = Vec::with_capacity(conns);
    for c in 0..conns {
        let mut stream = connect("an idle subscriber")?;
        let mut wire = Wire::new(Protocol::Switchboard).with_token(&settings.token()?);
        let mut out = BytesMut::new();
        let share = n / conns + usize::from(c < n % conns);
        for i in 0..share {
            // Distinct prefixes of several lengths, none a prefix of the run's subjects
            // or keys.
            let prefix = format!("idle.{c}.{i}.");
            if i == 0 {
                wire.subscribe(&mut out, prefix.as_bytes());
            } else {
                wire.subscribe_more(&mut out, prefix.as_bytes());
            }
        }
        stream
            .write_all(&out)
            .map_err(|e| Error::Connect(format!("subscribing: {e}")))?;
        // HELLO's answer and one per SUBSCRIBE.
        let mut owed = share + 1;
        let mut input = BytesMut::new();
        while owed > 0 {
            read_more(&mut stream, &mut input)
                .map_err(|e| Error::Connect(format!("subscribing: {e}")))?;
            while let Some(incoming) = wire
                .incoming(&mut input)
                .map_err(|e| Error::Failed(format!("subscribing: {e}")))?
            {
                if matches!(incoming, Incoming::Other) {
                    owed -= 1;
                }
            }
        }
        streams.push(stream);
    }
    Ok(streams)
}

/// The stalled watchers read at last: each must get, in order, an event or a GAP for
/// every change up to `last` (the last written; every change of a watch run is a
/// write to a watched key). Returns (whole, broken).
pub(super) fn resume_stalled(streams: Vec<TcpStream>, last: u64) -> (u64, u64) {
    let (mut whole, mut broken) = (0, 0);
    for mut stream in streams {
        let _ = stream.set_read_timeout(Some(TICK));
        let mut wire = Wire::new(Protocol::Switchboard);
        let mut input = BytesMut::with_capacity(256 << 10);
        let mut out = BytesMut::new();
        let mut reached = 0u64;
        let mut ok = true;
        let deadline = now_ns() + DRAIN.as_nanos() as u64;
        while reached < last && now_ns() < deadline {
            match read_more(&mut stream, &mut input) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(_) => break,
            }
            while let Ok(Some(incoming)) = wire.incoming(&mut input) {
                match incoming {
                    Incoming::Event { seq, .. } => {
                        // Every write of the run matches: the stream has no holes.
                        ok &= reached == 0 || seq == reached + 1;
                        reached = seq;
                    }
                    Incoming::Gap { after, oldest } => {
                        ok &= after == reached || reached == 0;
                        reached = oldest - 1;
                    }
                    Incoming::Ping => {
                        wire.ping(&mut out);
                        let _ = stream.write_all(&out);
                        out.clear();
                    }
                    _ => {}
                }
            }
        }
        if ok && reached >= last {
            whole += 1;
        } else {
            broken += 1;
        }
    }
    (whole, broken)
}

/// Opens `--stalled-subscribers` connections that subscribe like the others and then
/// never read.
pub(super) fn stalled_subscribers(
    settings: &Settings,
    connect: &dyn Fn(&str) -> Result<TcpStream, Error>,
) -> Result<Vec<TcpStream>, Error> {
    let prefix = match settings.workload {
        Workload::Watch => WATCH_PREFIX,
        _ => SUBJECT,
    };
    (0..settings.stalled_subscribers)
        .map(|_| {
            let mut stream = connect("a stalled subscriber")?;
            let mut out = BytesMut::new();
            Wire::new(settings.protocol)
                .with_token(&settings.token()?)
                .subscribe(&mut out, prefix);
            stream
                .write_all(&out)
                .map_err(|e| Error::Connect(format!("subscribing: {e}")))?;
            Ok(stream)
        })
        .collect()
}
