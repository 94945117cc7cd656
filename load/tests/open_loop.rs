//! switchboard-load's open loop and rate search against fake servers of known
//! behaviour: the schedule is kept, a stall shows in corrected latency, a server that
//! falls behind or a generator that cannot keep up is named, and the search finds a
//! known capacity. Each test runs the real binary for a second or two and reads its
//! JSON.

mod common;

use common::fake::{serve, Behavior};
use common::{f, run_load, serial, text, u, TempJson};
use std::time::Duration;

#[test]
fn open_loop_sends_rate_times_duration() {
    let _serial = serial();
    let addr = serve(Behavior::Correct).to_string();
    let json = TempJson::new("rate");
    let out = run_load(&[
        "--addr",
        &addr,
        "--rate",
        "2000",
        "--duration",
        "2s",
        "--warmup",
        "0s",
        "--connections",
        "8",
        "--quiet",
        "--json",
        json.path(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let j = json.read();
    let sent = u(&j, &["sent"]);
    assert!((3960..=4040).contains(&sent), "sent {sent}\n{}", text(&out));
    assert_eq!(u(&j, &["offered"]), 4000);
    assert_eq!(u(&j, &["ops"]), sent);
    assert_eq!(u(&j, &["errors"]), 0);
    let tput = f(&j, &["throughput_ops_per_sec"]);
    assert!((1960.0..=2040.0).contains(&tput), "{tput}");
}

#[test]
fn json_has_every_field_with_its_type() {
    let _serial = serial();
    let addr = serve(Behavior::Correct).to_string();
    let json = TempJson::new("fields");
    let out = run_load(&[
        "--addr",
        &addr,
        "--requests",
        "400",
        "--warmup",
        "0s",
        "--connections",
        "4",
        "--pipeline",
        "4",
        "--mix",
        "get=4,put=3,del=1,cas=1,ping=1",
        "--keys",
        "50",
        "--value-size",
        "10-200",
        "--quiet",
        "--json",
        json.path(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let j = json.read();
    assert_eq!(u(&j, &["ops"]), 400);
    assert_eq!(u(&j, &["errors"]), 0);
    assert!(u(&j, &["misses"]) <= 400);
    assert!(f(&j, &["duration_s"]) > 0.0);
    assert!(f(&j, &["throughput_ops_per_sec"]) > 0.0);
    assert!(j["client_bound"].is_boolean());
    for hist in ["latency_us", "service_time_us", "dispatch_lag_us"] {
        for p in ["p50", "p90", "p99", "p999", "max"] {
            assert!(j[hist][p].is_number(), "{hist}.{p} missing: {j}");
        }
    }
    let lat = &j["latency_us"];
    assert!(f(lat, &["p50"]) > 0.0);
    assert!(f(lat, &["p50"]) <= f(lat, &["p99"]) && f(lat, &["p99"]) <= f(lat, &["max"]));
    assert!(f(&j, &["client_cpu_us_per_request"]) > 0.0);
    assert_eq!(j["mode"], "closed");
    let by_type: u64 = j["ops_by_type"]
        .as_object()
        .expect("ops_by_type")
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(by_type, 400);
    let params = &j["params"];
    assert_eq!(params["protocol"], "switchboard");
    assert_eq!(u(params, &["connections"]), 4);
    assert_eq!(u(params, &["pipeline"]), 4);
    assert_eq!(params["mix"], "get=4,put=3,del=1,cas=1,ping=1");
    assert_eq!(params["value_size"], "10-200");
    assert_eq!(u(params, &["requests"]), 400);
}

#[test]
fn a_stall_shows_in_corrected_latency_but_not_in_service_time() {
    let _serial = serial();
    // 2000/s for 2 s over 10 connections; request 1000 (about 0.5 s in) holds the
    // server for 300 ms. About 600 requests fall due during the stall: corrected
    // latency charges each its wait. Only the ~10 requests already in flight see it in
    // service time: 0.25% of them, under the 1% that p99 looks at.
    let addr = serve(Behavior::StallAt(1000, Duration::from_millis(300))).to_string();
    let json = TempJson::new("stall");
    let out = run_load(&[
        "--addr",
        &addr,
        "--rate",
        "2000",
        "--duration",
        "2s",
        "--warmup",
        "0s",
        "--connections",
        "10",
        "--quiet",
        "--json",
        json.path(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let j = json.read();
    let corrected_p99 = f(&j, &["latency_us", "p99"]);
    let corrected_p90 = f(&j, &["latency_us", "p90"]);
    let service_p99 = f(&j, &["service_time_us", "p99"]);
    let service_max = f(&j, &["service_time_us", "max"]);
    assert!(
        corrected_p99 >= 200_000.0,
        "corrected p99 {corrected_p99} us\n{}",
        text(&out)
    );
    assert!(
        corrected_p90 >= 20_000.0,
        "corrected p90 {corrected_p90} us"
    );
    assert!(
        service_p99 < 100_000.0,
        "service p99 {service_p99} us\n{}",
        text(&out)
    );
    // The requests in flight during the stall did wait: the stall is real.
    assert!(service_max >= 250_000.0, "service max {service_max} us");
}

#[test]
fn a_server_that_falls_behind_shows_in_throughput_and_corrected_latency() {
    let _serial = serial();
    // Capacity about 950/s, offered 2500/s for 1 s: the 2500 requests take ~2.6 s.
    let addr = serve(Behavior::Slow(Duration::from_millis(1))).to_string();
    let json = TempJson::new("behind");
    let out = run_load(&[
        "--addr",
        &addr,
        "--rate",
        "2500",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--connections",
        "4",
        "--quiet",
        "--json",
        json.path(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let j = json.read();
    assert_eq!(u(&j, &["ops"]), 2500);
    let tput = f(&j, &["throughput_ops_per_sec"]);
    assert!(
        tput < 1200.0,
        "throughput {tput} is what was offered, not achieved"
    );
    assert!(f(&j, &["duration_s"]) > 2.0);
    // The last requests were due at 1 s and answered near 2.6 s.
    assert!(f(&j, &["latency_us", "p99"]) > 1_000_000.0, "{j}");
    // Each request still took only a few ms once it was on the wire.
    assert!(f(&j, &["service_time_us", "p50"]) < 50_000.0, "{j}");
    assert_eq!(j["client_bound"], false, "{}", text(&out));
    assert!(u(&j, &["slot_waits"]) > 1000);
    assert!(String::from_utf8_lossy(&out.stdout).contains("waited for a free pipeline slot"));
}

#[test]
fn an_unreachable_rate_is_reported_client_bound() {
    let _serial = serial();
    let addr = serve(Behavior::Correct).to_string();
    let json = TempJson::new("bound");
    let out = run_load(&[
        "--addr",
        &addr,
        "--rate",
        "20000000",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--timeout",
        "1s",
        "--connections",
        "4",
        "--pipeline",
        "256",
        "--quiet",
        "--json",
        json.path(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let j = json.read();
    assert_eq!(j["client_bound"], true, "{}", text(&out));
    assert!(u(&j, &["sent"]) < u(&j, &["offered"]));
    assert!(j["client_bound_reason"].is_string());
    assert!(String::from_utf8_lossy(&out.stdout).contains("CLIENT-BOUND"));
}

#[test]
fn a_reachable_rate_is_not_client_bound() {
    let _serial = serial();
    let addr = serve(Behavior::Correct).to_string();
    let json = TempJson::new("notbound");
    let out = run_load(&[
        "--addr",
        &addr,
        "--rate",
        "500",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--connections",
        "4",
        "--quiet",
        "--json",
        json.path(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let j = json.read();
    assert_eq!(u(&j, &["sent"]), 500);
    // Generator lag is judged at p90 against 1 ms; at 500/s it is far below.
    assert_eq!(j["client_bound"], false, "{}", text(&out));
}

#[test]
fn find_max_rate_finds_the_capacity_of_a_slow_server() {
    let _serial = serial();
    // 1 ms per request under one lock: about 900-1000 requests a second at most.
    // Above that the queue grows by hundreds in a 400 ms trial, far past 50 ms; the
    // lower bound is loose because a busy machine adds its own delays.
    let addr = serve(Behavior::Slow(Duration::from_millis(1))).to_string();
    let json = TempJson::new("maxrate");
    let out = run_load(&[
        "--addr",
        &addr,
        "--find-max-rate",
        "--slo",
        "p99=50ms",
        "--rate",
        "250",
        "--duration",
        "400ms",
        "--warmup",
        "0s",
        "--connections",
        "8",
        "--quiet",
        "--json",
        json.path(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let j = json.read();
    let max = f(&j, &["find_max_rate", "max_rate_ops_per_sec"]);
    assert!(
        (300.0..=1200.0).contains(&max),
        "max rate {max}\n{}",
        text(&out)
    );
    let trials = j["find_max_rate"]["trials"].as_array().expect("trials");
    assert!(
        trials.iter().any(|t| t["ok"] == false),
        "no trial failed: {j}"
    );
    assert!(trials.iter().any(|t| t["ok"] == true));
    // The reported run is the best passing one.
    assert_eq!(f(&j, &["offered_rate_ops_per_sec"]), max);
}

#[test]
fn one_noisy_trial_does_not_end_the_search() {
    let _serial = serial();
    // The same 1 ms server, which stalls once for 300 ms early in the first trial: that
    // trial misses, its confirmation meets, and the search goes on up.
    let stall = Behavior::SlowStallingAt(Duration::from_millis(1), 40, Duration::from_millis(300));
    let addr = serve(stall).to_string();
    let json = TempJson::new("maxrate-noisy");
    let out = run_load(&[
        "--addr",
        &addr,
        "--find-max-rate",
        "--slo",
        "p99=50ms",
        "--rate",
        "250",
        "--duration",
        "400ms",
        "--warmup",
        "0s",
        "--connections",
        "8",
        "--quiet",
        "--json",
        json.path(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let j = json.read();
    let trials = j["find_max_rate"]["trials"].as_array().expect("trials");
    assert_eq!(trials[0]["rate"], 250.0);
    assert_eq!(
        trials[0]["ok"], false,
        "the stall fails the first trial: {j}"
    );
    assert_eq!(trials[1]["rate"], 250.0, "and the rate is tried again: {j}");
    assert_eq!(trials[1]["ok"], true);
    let max = f(&j, &["find_max_rate", "max_rate_ops_per_sec"]);
    assert!(
        max > 250.0,
        "max rate {max}: one noisy trial ended the search\n{j}"
    );
    let certainty = j["find_max_rate"]["certainty"].as_str().unwrap();
    assert!(certainty.contains("met the target in"), "{certainty}");
    assert!(text(&out).contains("how sure:"), "{}", text(&out));
}

#[test]
fn an_unmeetable_target_fails_the_search_but_still_reports() {
    let _serial = serial();
    // Every request takes at least 1 ms: p99 = 100 us cannot be met at any rate.
    let addr = serve(Behavior::Slow(Duration::from_millis(1))).to_string();
    let json = TempJson::new("nomaxrate");
    let out = run_load(&[
        "--addr",
        &addr,
        "--find-max-rate",
        "--slo",
        "p99=100us",
        "--rate",
        "50",
        "--duration",
        "400ms",
        "--warmup",
        "0s",
        "--connections",
        "2",
        "--quiet",
        "--json",
        json.path(),
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no rate met p99=100us"));
    let j = json.read();
    assert!(j["find_max_rate"]["max_rate_ops_per_sec"].is_null(), "{j}");
    let trials = j["find_max_rate"]["trials"].as_array().expect("trials");
    assert!(
        trials.len() >= 2 && trials.iter().all(|t| t["ok"] == false),
        "{j}"
    );
    assert!(f(&j, &["latency_us", "p99"]) >= 1000.0);
}
