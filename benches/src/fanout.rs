//! Fan-out mode (`--fanout 1,2,4`): one publisher (the harness) and N subscriber processes,
//! every message published once and received by every subscriber.
//!
//! A fan-out transport sets up one publisher and N subscribers ([`FanoutTransport::listen`]
//! in the harness, [`FanoutTransport::connect`] in each subscriber). A subscriber is an
//! ordinary [`Endpoint`]: `recv` takes the next published message, `send` replies on the
//! subscriber's own return path, so the subscribers run the ordinary peer loops
//! ([`driver::rtt_echo`], [`driver::stream_recv`]). The publisher is a [`FanPublisher`]:
//! `publish` once for all subscribers, `reply(i)` for subscriber `i`'s answer.
//!
//! Phases, per transport, N and size, with N fresh subscriber processes:
//! - *round trip*: publish one message, wait for all N echoes (in subscriber order: the round
//!   trip ends with the last), record; then, for half as long, the same exchange with only the
//!   `publish` call timed — the publisher's cost per message, which should not grow with N for a
//!   broadcast ring (and grows with N for N pipes).
//! - *throughput*: the publisher publishes sequence-numbered messages for a fixed time; each
//!   subscriber checks the sequence and reports how many arrived and when the last did. The
//!   rate per subscriber is its count over the time from the first publish to its last
//!   arrival; the row shows the slowest subscriber's, and the publisher's own rate
//!   (messages published per second, each counted once) and CPU per message.
//!
//! `shmbus-spsc` in the fan-out transport list adds the 1:1 SPSC ring as the reference row
//! (N = 1): the ordinary round-trip and streaming phases, against which the 1-subscriber
//! broadcast round trip is compared (paired within rounds).

use crate::cli::Options;
use crate::clock::{cpu_ns, now_ns};
use crate::driver;
use crate::load::LoadProbe;
use crate::measure;
use crate::peer::{field, Peer, PeerSpec, RunEnv};
use crate::report::CONTAMINATED;
use crate::stats::{median, spread, Percentiles};
use crate::transport::{self, Endpoint, SetupEnv};
use anyhow::{bail, ensure, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::os::fd::OwnedFd;
use std::time::Duration;

/// Prefix of a fan-out subscriber's role name on the peer command line.
pub const ROLE_PREFIX: &str = "fanout:";

/// The 1:1 transport measured as the reference row of a fan-out run.
pub const REFERENCE: &str = "shmbus-spsc";

/// The publisher's side of a fan-out.
pub trait FanPublisher {
    /// Publishes one message to every subscriber.
    fn publish(&mut self, msg: &[u8]) -> Result<()>;
    /// Receives subscriber `i`'s next reply into `buf`; returns its length.
    fn reply(&mut self, i: usize, buf: &mut [u8]) -> Result<usize>;
}

/// What one subscriber process is handed.
pub struct SubscriberSetup {
    /// Passed to [`FanoutTransport::connect`] in the subscriber.
    pub arg: String,
    /// Becomes the subscriber's standard input.
    pub stdin: Option<OwnedFd>,
    /// Becomes the subscriber's standard output.
    pub stdout: Option<OwnedFd>,
}

/// A fan-out set up by the harness, before its subscribers run.
pub struct FanListening {
    /// One entry per subscriber, in subscriber order.
    pub subscribers: Vec<SubscriberSetup>,
    /// The harness's side.
    pub publisher: Box<dyn FanPublisher>,
}

/// A way of publishing to N subscriber processes.
pub trait FanoutTransport {
    /// The name used on the command line and in every output.
    fn name(&self) -> &'static str;
    /// One line for the report's notes: how the fan-out and the return paths are built.
    fn what(&self) -> String;
    /// Whether a subscriber may miss messages (its stream phase counts gaps instead of
    /// failing on them).
    fn lossy(&self) -> bool {
        false
    }
    /// Parent side: the publisher and what `n` subscribers attach to.
    fn listen(&self, env: &SetupEnv, size: usize, n: usize) -> Result<FanListening>;
    /// Subscriber side: attaches to what `listen` created.
    fn connect(&self, arg: &str, size: usize) -> Result<Box<dyn Endpoint>>;
}

/// Every fan-out transport, in run order.
pub fn all() -> Vec<Box<dyn FanoutTransport>> {
    vec![
        Box::new(crate::transport::shmbus_broadcast::ShmbusBroadcast(false)),
        Box::new(crate::transport::shmbus_broadcast::ShmbusBroadcast(true)),
        #[cfg(feature = "iceoryx2")]
        Box::new(crate::transport::iceoryx2::Iceoryx2Fanout),
        Box::new(crate::transport::pipe::PipeFanout),
    ]
}

/// The fan-out transport called `name`.
pub fn by_name(name: &str) -> Option<Box<dyn FanoutTransport>> {
    all().into_iter().find(|t| t.name() == name)
}

/// Throughput of one round.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FanThroughput {
    /// The slowest subscriber's messages per second.
    pub per_sub_min: f64,
    /// The fastest subscriber's.
    pub per_sub_max: f64,
    /// Messages published per second (each counted once).
    pub publisher: f64,
    /// Payload MB (10^6) per second at the slowest subscriber.
    pub mb_per_s: f64,
    /// The publisher's CPU per published message, ns (NaN for the reference row).
    pub pub_cpu_ns_per_msg: f64,
    /// All subscribers' CPU per published message, ns (NaN for the reference row).
    pub subs_cpu_ns_per_msg: f64,
    /// CPU of every process (publisher and subscribers; both sides for the 1:1 reference) per
    /// published message, ns.
    pub total_cpu_ns_per_msg: f64,
    /// Messages the subscribers missed, summed (lossy transports only).
    pub missed: u64,
}

/// Everything measured for one transport, N and size in one round.
#[derive(Debug, Clone, Default)]
pub struct FanResult {
    /// Publish and wait for all N replies.
    pub rtt: Option<Percentiles>,
    /// The publish call alone.
    pub publish: Option<Percentiles>,
    /// Streaming.
    pub stream: Option<FanThroughput>,
}

/// The CPUs of subscribers `0..n`: round-robin over the allowed CPUs other than the
/// publisher's (over all of them when there is only one).
pub fn subscriber_cpus(cpus: &[usize], n: usize) -> Vec<Option<usize>> {
    let pool = if cpus.len() >= 2 { &cpus[1..] } else { cpus };
    (0..n)
        .map(|i| (!pool.is_empty() && cpus.len() >= 2).then(|| pool[i % pool.len()]))
        .collect()
}

/// Runs both phases of `t` with `n` fresh subscribers at `size`.
pub fn measure(
    env: &mut RunEnv,
    t: &dyn FanoutTransport,
    n: usize,
    size: usize,
    cpus: &[Option<usize>],
    opts: &Options,
) -> Result<FanResult> {
    let name = t.name();
    let budget = opts.warmup + opts.phase * 3 + Duration::from_secs(20);
    let listening = t
        .listen(
            &SetupEnv {
                dir: env.dir.clone(),
                unique: env.unique(),
            },
            size,
            n,
        )
        .with_context(|| format!("{name} 1→{n} at {size} B: setting up"))?;
    ensure!(
        listening.subscribers.len() == n,
        "{name}: wrong subscriber count"
    );
    let role = format!("{ROLE_PREFIX}{name}");
    let mut peers = Vec::with_capacity(n);
    for (i, sub) in listening.subscribers.into_iter().enumerate() {
        let mut p = Peer::start(
            env,
            PeerSpec {
                role: &role,
                size,
                cpu: cpus[i],
                arg: &sub.arg,
                stdin: sub.stdin,
                stdout: sub.stdout,
                label: format!("{name} 1→{n} at {size} B, subscriber {i}"),
                bracket: None,
            },
            budget,
        )?;
        p.ready()?;
        peers.push(p);
    }
    let mut publisher = listening.publisher;
    let mut out = FanResult::default();

    for p in &mut peers {
        p.begin("rtt")?;
    }
    let (rtt, publish) = driver::fan_rtt(publisher.as_mut(), n, size, opts.warmup, opts.phase)
        .with_context(|| format!("{name} 1→{n} at {size} B: round trip"))?;
    for p in &mut peers {
        p.done()?;
    }
    out.rtt = Some(Percentiles::of(&rtt));
    out.publish = Some(Percentiles::of(&publish));

    let cmd = if t.lossy() { "stream-lossy" } else { "stream" };
    for p in &mut peers {
        p.begin(cmd)?;
    }
    let (cpu0, t0) = (cpu_ns(), now_ns());
    let sent = driver::fan_stream(publisher.as_mut(), size, opts.phase)
        .with_context(|| format!("{name} 1→{n} at {size} B: streaming"))?;
    let (cpu1, t1) = (cpu_ns(), now_ns());
    let (mut lo, mut hi, mut subs_cpu, mut missed_all) = (f64::INFINITY, 0f64, 0u64, 0u64);
    for (i, p) in peers.iter_mut().enumerate() {
        let f = p.done()?;
        let (got, end) = (field(&f, "count")?, field(&f, "end_ns")?);
        let missed = if t.lossy() {
            // Gaps the subscriber saw, plus what it skipped at the end: a subscriber overtaken
            // resumes at the latest record, which may be STOP.
            let seen = field(&f, "missed")?;
            ensure!(
                got + seen <= sent,
                "{name} 1→{n} at {size} B: published {sent} messages, subscriber {i} \
                 received {got} and saw gaps of {seen}"
            );
            sent - got
        } else {
            ensure!(
                got == sent,
                "{name} 1→{n} at {size} B: published {sent} messages, subscriber {i} received {got}"
            );
            0
        };
        let rate = got as f64 / (end.saturating_sub(t0).max(1) as f64 / 1e9);
        lo = lo.min(rate);
        hi = hi.max(rate);
        subs_cpu += field(&f, "cpu_ns")?;
        missed_all += missed;
    }
    let sent_f = sent.max(1) as f64;
    out.stream = Some(FanThroughput {
        per_sub_min: lo,
        per_sub_max: hi,
        publisher: sent as f64 / ((t1 - t0).max(1) as f64 / 1e9),
        mb_per_s: lo * size as f64 / 1e6,
        pub_cpu_ns_per_msg: (cpu1 - cpu0) as f64 / sent_f,
        subs_cpu_ns_per_msg: subs_cpu as f64 / sent_f,
        total_cpu_ns_per_msg: (cpu1 - cpu0 + subs_cpu) as f64 / sent_f,
        missed: missed_all,
    });

    for p in peers {
        p.quit()?;
    }
    drop(publisher);
    Ok(out)
}

/// One round's result for one transport, N and size.
#[derive(Debug, Clone)]
pub struct FanRecord {
    /// Transport name.
    pub transport: String,
    /// Subscribers.
    pub n: usize,
    /// Message size, bytes.
    pub size: usize,
    /// Round (from 1).
    pub round: usize,
    /// Competing load during the measurement (fraction of a core).
    pub other_load: Option<f64>,
    /// What was measured.
    pub result: FanResult,
}

/// All rounds of one transport, N and size, folded (medians; clean rounds preferred).
#[derive(Debug, Clone)]
pub struct FanRow {
    /// Transport name.
    pub transport: String,
    /// Subscribers.
    pub n: usize,
    /// Message size, bytes.
    pub size: usize,
    /// Rounds that contributed.
    pub rounds: usize,
    /// Rounds left out for competing load.
    pub set_aside: usize,
    /// Every round ran under competing load.
    pub contaminated: bool,
    /// Round trip (median) and the spread of its p50.
    pub rtt: Option<(Percentiles, (f64, f64))>,
    /// Publish call alone.
    pub publish: Option<Percentiles>,
    /// Streaming (field-wise medians; `missed` is the total).
    pub stream: Option<FanThroughput>,
}

impl FanRow {
    fn label(&self) -> String {
        let mark = if self.contaminated { "*" } else { "" };
        if self.transport == REFERENCE {
            format!("{}{mark} (1:1)", self.transport)
        } else {
            format!("{}{mark}", self.transport)
        }
    }
}

fn is_clean(r: &FanRecord) -> bool {
    r.other_load.is_none_or(|l| l < CONTAMINATED)
}

/// Folds records into rows, by size, then N, then run order.
pub fn rows(records: &[FanRecord]) -> Vec<FanRow> {
    let mut keys: Vec<(usize, usize, String)> = Vec::new();
    for r in records {
        let k = (r.size, r.n, r.transport.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.sort_by_key(|k| (k.0, k.1));
    keys.into_iter()
        .map(|(size, n, transport)| {
            let all: Vec<&FanRecord> = records
                .iter()
                .filter(|r| r.size == size && r.n == n && r.transport == transport)
                .collect();
            let clean: Vec<&FanRecord> = all.iter().copied().filter(|r| is_clean(r)).collect();
            let used = if clean.is_empty() { &all } else { &clean };
            let rtt: Vec<Percentiles> = used.iter().filter_map(|r| r.result.rtt).collect();
            let publish: Vec<Percentiles> = used.iter().filter_map(|r| r.result.publish).collect();
            let st: Vec<FanThroughput> = used.iter().filter_map(|r| r.result.stream).collect();
            let m = |f: fn(&FanThroughput) -> f64| median(st.iter().map(f));
            FanRow {
                rounds: used.len(),
                set_aside: all.len() - used.len(),
                contaminated: clean.is_empty(),
                rtt: (!rtt.is_empty()).then(|| {
                    (
                        Percentiles::median_of(&rtt),
                        spread(rtt.iter().map(|p| p.p50)),
                    )
                }),
                publish: (!publish.is_empty()).then(|| Percentiles::median_of(&publish)),
                stream: (!st.is_empty()).then(|| FanThroughput {
                    per_sub_min: m(|s| s.per_sub_min),
                    per_sub_max: m(|s| s.per_sub_max),
                    publisher: m(|s| s.publisher),
                    mb_per_s: m(|s| s.mb_per_s),
                    pub_cpu_ns_per_msg: m(|s| s.pub_cpu_ns_per_msg),
                    subs_cpu_ns_per_msg: m(|s| s.subs_cpu_ns_per_msg),
                    total_cpu_ns_per_msg: m(|s| s.total_cpu_ns_per_msg),
                    missed: st.iter().map(|s| s.missed).sum(),
                }),
                transport,
                n,
                size,
            }
        })
        .collect()
}

/// A ratio formed within each round, and the median across rounds.
#[derive(Debug, Clone)]
pub struct Check {
    /// What is compared.
    pub what: String,
    /// Message size.
    pub size: usize,
    /// Median of the per-round ratios.
    pub ratio: f64,
    /// Rounds paired.
    pub rounds: usize,
    /// The target, if the issue sets one (ratio at most this).
    pub target: Option<f64>,
    /// Why the ratio may not mean much here (subscribers sharing cores).
    pub caveat: Option<String>,
}

fn paired(
    records: &[FanRecord],
    a: (&str, usize),
    b: (&str, usize),
    size: usize,
    fig: fn(&FanResult) -> Option<f64>,
) -> Option<(f64, usize)> {
    let get = |(t, n): (&str, usize), round: usize| {
        records
            .iter()
            .find(|r| r.transport == t && r.n == n && r.size == size && r.round == round)
            .and_then(|r| fig(&r.result))
    };
    let rounds: Vec<usize> = records.iter().map(|r| r.round).collect();
    let mut ratios = Vec::new();
    let mut seen = Vec::new();
    for round in rounds {
        if seen.contains(&round) {
            continue;
        }
        seen.push(round);
        if let (Some(x), Some(y)) = (get(a, round), get(b, round)) {
            if y > 0.0 {
                ratios.push(x / y);
            }
        }
    }
    (!ratios.is_empty()).then(|| (median(ratios.iter().copied()), ratios.len()))
}

/// The checks: the 1-subscriber broadcast round trip against the SPSC ring's (target
/// ≤ 1.2×), and each transport's publish cost at the largest N against N = 1.
///
/// `cores` is how many CPUs the run may use: with fewer than N + 1, busy-polling subscribers
/// share cores and the publish-cost ratio gets a caveat.
pub fn checks(records: &[FanRecord], ns: &[usize], sizes: &[usize], cores: usize) -> Vec<Check> {
    let mut out = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for r in records {
        if r.transport != REFERENCE && !names.contains(&r.transport.as_str()) {
            names.push(&r.transport);
        }
    }
    let (n_lo, n_hi) = (
        ns.iter().copied().min().unwrap_or(1),
        ns.iter().copied().max().unwrap_or(1),
    );
    for &size in sizes {
        for &t in &names {
            if t.starts_with("shmbus-broadcast") {
                if let Some((ratio, rounds)) = paired(records, (t, 1), (REFERENCE, 1), size, |r| {
                    r.rtt.map(|p| p.p50)
                }) {
                    out.push(Check {
                        what: format!("{t} 1→1 round trip p50 / {REFERENCE} (1:1)"),
                        size,
                        ratio,
                        rounds,
                        target: Some(1.2),
                        caveat: None,
                    });
                }
            }
            if n_hi > n_lo {
                if let Some((ratio, rounds)) = paired(records, (t, n_hi), (t, n_lo), size, |r| {
                    r.publish.map(|p| p.p50)
                }) {
                    out.push(Check {
                        what: format!("{t} publish p50, 1→{n_hi} / 1→{n_lo}"),
                        size,
                        ratio,
                        rounds,
                        target: t.starts_with("shmbus-broadcast").then_some(1.2),
                        caveat: (cores < n_hi + 1).then(|| {
                            format!(
                                "{cores} cores for 1+{n_hi} processes: subscribers share cores \
                                 (round trips take time slices, few publish samples)"
                            )
                        }),
                    });
                }
            }
        }
    }
    out
}

fn t(ns: f64) -> String {
    crate::report::t(ns)
}

fn si(v: f64) -> String {
    crate::report::si(v)
}

/// The terminal tables of a fan-out run.
pub fn table(
    machine: &crate::report::Machine,
    placement: &[String],
    notes: &[String],
    rows: &[FanRow],
    checks: &[Check],
    rounds: usize,
    quick: bool,
) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "machine: {} | {} cores | Linux {}",
        machine.cpu, machine.cores, machine.kernel
    );
    for p in placement {
        let _ = writeln!(o, "placement: {p}");
    }
    let _ = writeln!(
        o,
        "figures are medians of {rounds} interleaved rounds{}",
        if quick {
            " (--quick: short phases, thin tails)"
        } else {
            ""
        }
    );
    for n in notes {
        let _ = writeln!(o, "note: {n}");
    }
    let set_aside: usize = rows.iter().map(|r| r.set_aside).sum();
    if set_aside > 0 {
        let _ = writeln!(
            o,
            "note: {set_aside} measurement(s) under over {:.0} % of a core of competing load were \
             left out of the medians",
            CONTAMINATED * 100.0
        );
    }
    if rows.iter().any(|r| r.contaminated) {
        let _ = writeln!(
            o,
            "note: * = every round of that row ran under over {:.0} % of a core of competing load",
            CONTAMINATED * 100.0
        );
    }
    let mut tb = crate::table::table(&[
        "size",
        "transport",
        "1→N",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "p50 spread",
        "publish p50",
        "publish p99",
    ]);
    for r in rows {
        let Some((p, (lo, hi))) = r.rtt else { continue };
        let (pp50, pp99) = r
            .publish
            .map_or(("-".to_string(), "-".to_string()), |q| (t(q.p50), t(q.p99)));
        tb.add_row(vec![
            crate::report::size(r.size),
            r.label(),
            format!("1→{}", r.n),
            t(p.p50),
            t(p.p90),
            t(p.p99),
            t(p.p999),
            t(p.max),
            format!("{}..{}", t(lo), t(hi)),
            pp50,
            pp99,
        ]);
    }
    let _ = write!(o, "\nFAN-OUT ROUND TRIP (publish, all N replies)\n{tb}\n");
    let mut tb = crate::table::table(&[
        "size",
        "transport",
        "1→N",
        "msgs/s per sub (min..max)",
        "published msgs/s",
        "MB/s per sub",
        "publisher CPU/msg",
        "subscribers CPU/msg",
        "missed",
    ]);
    for r in rows {
        let Some(s) = r.stream else { continue };
        let cpu = |v: f64| if v.is_nan() { "-".to_string() } else { t(v) };
        tb.add_row(vec![
            crate::report::size(r.size),
            r.label(),
            format!("1→{}", r.n),
            format!("{}..{}", si(s.per_sub_min), si(s.per_sub_max)),
            si(s.publisher),
            format!("{:.1}", s.mb_per_s),
            cpu(s.pub_cpu_ns_per_msg),
            cpu(s.subs_cpu_ns_per_msg),
            s.missed.to_string(),
        ]);
    }
    let _ = write!(o, "\nFAN-OUT THROUGHPUT\n{tb}\n");
    if !checks.is_empty() {
        let mut tb = crate::table::table(&["size", "check", "ratio", "rounds", "verdict"]);
        for c in checks {
            let verdict = match c.target {
                Some(tg) if c.ratio <= tg => format!("target ≤ {tg}: met"),
                Some(tg) => format!("target ≤ {tg}: NOT met"),
                None => String::new(),
            };
            tb.add_row(vec![
                crate::report::size(c.size),
                c.what.clone(),
                format!("{:.2}×", c.ratio),
                c.rounds.to_string(),
                format!(
                    "{verdict}{}",
                    c.caveat
                        .as_ref()
                        .map_or(String::new(), |w| format!(" [caveat: {w}]"))
                ),
            ]);
        }
        crate::table::text_last(&mut tb);
        let _ = write!(
            o,
            "\nFAN-OUT CHECKS (ratios paired within rounds, median across rounds)\n{tb}\n"
        );
    }
    o
}

/// The JSON document of a fan-out run: `machine`, `results` (the 1:1 reference's `rtt` and
/// `throughput` entries in the issue-6 schema), and `fanout`: one `fanout_rtt` and one
/// `fanout_throughput` entry per transport, N (`subscribers`) and size, the placement per N,
/// and the checks.
#[allow(clippy::too_many_arguments)]
pub fn json(
    machine: &crate::report::Machine,
    placement: &[String],
    notes: &[String],
    rows: &[FanRow],
    checks: &[Check],
    rounds: usize,
    quick: bool,
) -> Value {
    let pct = |p: &Percentiles| {
        json!({"samples": p.samples, "p50_ns": p.p50, "p90_ns": p.p90, "p99_ns": p.p99,
               "p999_ns": p.p999, "p9999_ns": p.p9999, "max_ns": p.max})
    };
    let mut results = Vec::new();
    let mut fan = Vec::new();
    for r in rows {
        if r.transport == REFERENCE {
            if let Some((p, _)) = &r.rtt {
                results.push(crate::report::merge(
                    json!({"transport": r.transport, "size": r.size, "kind": "rtt"}),
                    pct(p),
                ));
            }
            if let Some(s) = &r.stream {
                results.push(
                    json!({"transport": r.transport, "size": r.size, "kind": "throughput",
                    "msgs_per_s": s.per_sub_min, "mb_per_s": s.mb_per_s,
                    "cpu_ns_per_msg": s.total_cpu_ns_per_msg}),
                );
            }
        }
        let head = |kind: &str| {
            json!({"transport": r.transport, "subscribers": r.n, "size": r.size, "kind": kind,
                   "rounds": r.rounds, "rounds_set_aside": r.set_aside,
                   "contaminated": r.contaminated, "reference_1to1": r.transport == REFERENCE})
        };
        if let Some((p, (lo, hi))) = &r.rtt {
            let mut e = crate::report::merge(head("fanout_rtt"), pct(p));
            e["p50_spread_ns"] = json!([lo, hi]);
            if let Some(q) = &r.publish {
                e["publish_p50_ns"] = json!(q.p50);
                e["publish_p99_ns"] = json!(q.p99);
                e["publish_p999_ns"] = json!(q.p999);
            }
            fan.push(e);
        }
        if let Some(s) = &r.stream {
            let num = |v: f64| if v.is_nan() { Value::Null } else { json!(v) };
            fan.push(crate::report::merge(
                head("fanout_throughput"),
                json!({"msgs_per_s_per_subscriber_min": s.per_sub_min,
                       "msgs_per_s_per_subscriber_max": s.per_sub_max,
                       "publisher_msgs_per_s": s.publisher,
                       "mb_per_s_per_subscriber": s.mb_per_s,
                       "publisher_cpu_ns_per_msg": num(s.pub_cpu_ns_per_msg),
                       "subscribers_cpu_ns_per_msg": num(s.subs_cpu_ns_per_msg),
                       "total_cpu_ns_per_msg": s.total_cpu_ns_per_msg,
                       "missed": s.missed}),
            ));
        }
    }
    let checks: Vec<Value> = checks
        .iter()
        .map(|c| {
            json!({"what": c.what, "size": c.size, "ratio": c.ratio, "rounds": c.rounds,
                        "target_max": c.target, "met": c.target.map(|t| c.ratio <= t), "caveat": c.caveat})
        })
        .collect();
    json!({
        "machine": {"cpu": machine.cpu, "cores": machine.cores, "kernel": machine.kernel,
                    "placement": placement.join("; ")},
        "results": results,
        "fanout": {"results": fan, "placement": placement, "checks": checks},
        "rounds": rounds,
        "quick": quick,
        "notes": notes,
    })
}

/// Runs a whole fan-out comparison (`--fanout N,...`); `Ok(false)` when a transport failed.
pub fn run(opts: &Options) -> Result<bool> {
    if opts.csv.is_some() || opts.svg.is_some() {
        bail!("--csv and --svg are not written in --fanout mode (use --json)");
    }
    crate::ring::set_ring_bytes(opts.ring_bytes.first().copied());
    let ns = &opts.fanout;
    // Which transports: the fan-out ones named (default: all), and the 1:1 reference.
    let (with_ref, fans): (bool, Vec<Box<dyn FanoutTransport>>) = if opts.transports.is_empty() {
        (true, all())
    } else {
        let mut v = Vec::new();
        for name in &opts.transports {
            if name == REFERENCE {
                continue;
            }
            match by_name(name) {
                Some(t) => v.push(t),
                None => bail!(
                    "unknown fan-out transport {name:?} (known: {REFERENCE} as the 1:1 reference, {})",
                    all().iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
                ),
            }
        }
        (opts.transports.iter().any(|n| n == REFERENCE), v)
    };
    let reference = transport::by_name(REFERENCE).expect("the reference transport exists");

    let cpus = crate::allowed_cpus();
    let pub_cpu = (cpus.len() >= 2).then(|| cpus[0]);
    if let Some(c) = pub_cpu {
        crate::peer::pin_to(c)?;
    }
    let mut placement = Vec::new();
    for &n in ns {
        let subs = subscriber_cpus(&cpus, n);
        let list = subs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                format!(
                    "#{i} {}",
                    c.map_or("unpinned".into(), |c| format!("cpu{c}"))
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        placement.push(format!(
            "1→{n}: publisher {}, subscribers {list}{}",
            pub_cpu.map_or("unpinned".into(), |c| format!("cpu{c}")),
            if cpus.len() >= 2 && n > cpus.len() - 1 {
                " (subscribers share cores)"
            } else {
                ""
            }
        ));
    }
    let mut notes: Vec<String> = fans
        .iter()
        .map(|t| format!("{}: {}", t.name(), t.what()))
        .collect();
    for t in [reference.as_ref()] {
        if with_ref {
            notes.extend(t.prepare(&opts.sizes));
        }
    }
    let mut env = RunEnv::new(pub_cpu.and(cpus.get(1).copied()))?;

    let load = LoadProbe::start();
    let mut records = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    let total = opts.rounds * opts.sizes.len() * (usize::from(with_ref) + ns.len() * fans.len());
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} round {prefix} {msg}")
            .expect("progress template")
            .progress_chars("=> "),
    );
    for round in 1..=opts.rounds {
        bar.set_prefix(format!("{round}/{}", opts.rounds));
        for &size in &opts.sizes {
            if with_ref {
                bar.inc(1);
            }
            if with_ref && !failed.iter().any(|f| f == REFERENCE) {
                bar.set_message(format!("{REFERENCE} (1:1) {size} B"));
                let probe = LoadProbe::start();
                match measure::measure(&mut env, reference.as_ref(), size, opts, false) {
                    Ok(pr) => records.push(FanRecord {
                        transport: REFERENCE.into(),
                        n: 1,
                        size,
                        round,
                        other_load: probe.others().map(|(o, s)| o + s),
                        result: FanResult {
                            rtt: pr.rtt,
                            publish: None,
                            stream: pr.stream.map(|s| FanThroughput {
                                per_sub_min: s.msgs_per_s,
                                per_sub_max: s.msgs_per_s,
                                publisher: s.msgs_per_s,
                                mb_per_s: s.mb_per_s,
                                pub_cpu_ns_per_msg: f64::NAN,
                                subs_cpu_ns_per_msg: f64::NAN,
                                total_cpu_ns_per_msg: s.cpu_ns_per_msg,
                                missed: 0,
                            }),
                        },
                    }),
                    Err(e) => {
                        bar.suspend(|| eprintln!("FAILED {REFERENCE}: {e:#}"));
                        notes.push(format!("{REFERENCE}: FAILED and dropped: {e:#}"));
                        failed.push(REFERENCE.into());
                    }
                }
            }
            for &n in ns {
                let subs = subscriber_cpus(&cpus, n);
                for t in &fans {
                    bar.inc(1);
                    if failed.iter().any(|f| f == t.name()) {
                        continue;
                    }
                    bar.set_message(format!("{} 1→{n} {size} B", t.name()));
                    let probe = LoadProbe::start();
                    match measure(&mut env, t.as_ref(), n, size, &subs, opts) {
                        Ok(result) => records.push(FanRecord {
                            transport: t.name().into(),
                            n,
                            size,
                            round,
                            other_load: probe.others().map(|(o, s)| o + s),
                            result,
                        }),
                        Err(e) => {
                            bar.suspend(|| eprintln!("FAILED {}: {e:#}", t.name()));
                            notes.push(format!("{}: FAILED and dropped: {e:#}", t.name()));
                            failed.push(t.name().into());
                        }
                    }
                }
            }
        }
    }
    bar.finish_and_clear();
    drop(env);
    notes.extend(load.note());

    let machine = crate::machine(placement.join("; "), cpus.len());
    let rows = rows(&records);
    let checks = checks(&records, ns, &opts.sizes, cpus.len());
    print!(
        "{}",
        table(
            &machine,
            &placement,
            &notes,
            &rows,
            &checks,
            opts.rounds,
            opts.quick
        )
    );
    if let Some(p) = &opts.json {
        let doc = json(
            &machine,
            &placement,
            &notes,
            &rows,
            &checks,
            opts.rounds,
            opts.quick,
        );
        let text = serde_json::to_string_pretty(&doc)?;
        std::fs::write(p, text + "\n").with_context(|| format!("writing {}", p.display()))?;
        println!("wrote {}", p.display());
    }
    Ok(failed.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_go_round_robin_over_the_cores_the_publisher_leaves() {
        assert_eq!(
            subscriber_cpus(&[0, 1], 4),
            [Some(1), Some(1), Some(1), Some(1)]
        );
        assert_eq!(
            subscriber_cpus(&[0, 1, 2, 3], 4),
            [Some(1), Some(2), Some(3), Some(1)]
        );
        assert_eq!(subscriber_cpus(&[0], 2), [None, None]);
    }

    fn rec(t: &str, n: usize, round: usize, p50: f64, publish: f64) -> FanRecord {
        let p = |v| Percentiles {
            samples: 1,
            p50: v,
            ..Percentiles::default()
        };
        FanRecord {
            transport: t.into(),
            n,
            size: 8,
            round,
            other_load: Some(0.0),
            result: FanResult {
                rtt: Some(p(p50)),
                publish: Some(p(publish)),
                stream: None,
            },
        }
    }

    #[test]
    fn checks_pair_within_rounds() {
        let records = vec![
            rec(REFERENCE, 1, 1, 100.0, 0.0),
            rec("shmbus-broadcast", 1, 1, 110.0, 20.0),
            rec("shmbus-broadcast", 4, 1, 900.0, 22.0),
            rec("pipe", 1, 1, 5000.0, 1000.0),
            rec("pipe", 4, 1, 9000.0, 4000.0),
        ];
        let c = checks(&records, &[1, 4], &[8], 8);
        let get = |w: &str| c.iter().find(|c| c.what.contains(w)).unwrap().ratio;
        assert!((get("shmbus-broadcast 1→1") - 1.1).abs() < 1e-9);
        assert!((get("shmbus-broadcast publish") - 1.1).abs() < 1e-9);
        assert!((get("pipe publish") - 4.0).abs() < 1e-9);
        assert_eq!(rows(&records).len(), 5);
    }
}
