//! The channel side of the test peer: `send` creates a channel and sends numbered messages,
//! counting how often the channel was full (back-pressure); `recv` opens it (waiting for it to
//! appear), optionally stalls until told, receives and reports as `sub` does.

use super::{Report, TestMsg, TYPE_NAME};
use shmbus::flavor::Flavor;
use shmbus::{ChannelBuilder, RecvTimeoutError, TrySendError};
use std::io::BufRead;
use std::time::{Duration, Instant};

type Res = Result<(), Box<dyn std::error::Error>>;

/// What `send` and `recv` take.
#[derive(clap::Args)]
pub struct ChanArgs {
    /// The channel's shm name (`/orders`).
    #[arg(long)]
    channel: String,
    #[arg(long)]
    count: u64,
    /// MPMC instead of SPSC.
    #[arg(long)]
    mpmc: bool,
    /// `send`: the message's filler size.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// `send`: the channel's bound, in messages.
    #[arg(long, default_value_t = 64)]
    capacity: u64,
    /// `send`: pause between messages, in microseconds.
    #[arg(long, default_value_t = 0)]
    interval_us: u64,
    /// `send`: wait for a line on stdin before sending; `recv`: after `ready`, wait for a
    /// line on stdin before receiving (a stalled receiver), then print `resumed`.
    #[arg(long)]
    go_stdin: bool,
    /// `recv`: give up after this long.
    #[arg(long, default_value_t = 60_000)]
    timeout_ms: u64,
}

fn go(wait: bool) -> std::io::Result<()> {
    if wait {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
    }
    Ok(())
}

/// Sends `count` messages; prints `created`, then `done sent=<n> full=<times Full>`, then
/// keeps the channel until stdin closes.
pub fn send(a: &ChanArgs) -> Res {
    let b = shmbus::channel::<TestMsg>()
        .type_name(TYPE_NAME)
        .capacity(a.capacity)
        .max_message(a.size + 64);
    if a.mpmc {
        send_on(&b.mpmc(), a)
    } else {
        send_on(&b.spsc(), a)
    }
}

fn send_on<F: Flavor>(b: &ChannelBuilder<TestMsg, F>, a: &ChanArgs) -> Res {
    let mut tx = b.create_sender(&a.channel)?;
    println!("created");
    go(a.go_stdin)?;
    let (mut full, mut sent) = (0u64, 0u64);
    for seq in 0..a.count {
        let mut msg = TestMsg {
            seq,
            data: vec![(seq % 251) as u8; a.size],
        };
        loop {
            match tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) => {
                    full += 1;
                    match tx.send(m) {
                        Ok(()) => break,
                        Err(e) => msg = e.into_inner(),
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                // The bridge that receives here went away: its successor takes over.
                Err(TrySendError::Disconnected(m)) => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(e.to_string().into()),
            }
        }
        sent += 1;
        if a.interval_us > 0 {
            std::thread::sleep(Duration::from_micros(a.interval_us));
        }
    }
    println!("done sent={sent} full={full}");
    let mut line = String::new();
    while std::io::stdin().lock().read_line(&mut line)? > 0 {}
    drop(tx);
    Ok(())
}

/// Receives until `seq` `count - 1`; prints `ready`, then (with `--go-stdin`) `resumed`, then
/// a JSON [`Report`].
pub fn recv(a: &ChanArgs) -> Res {
    let b = shmbus::channel::<TestMsg>().type_name(TYPE_NAME);
    if a.mpmc {
        recv_on(&b.mpmc(), a)
    } else {
        recv_on(&b.spsc(), a)
    }
}

fn recv_on<F: Flavor>(builder: &ChannelBuilder<TestMsg, F>, a: &ChanArgs) -> Res {
    let deadline = Instant::now() + Duration::from_millis(a.timeout_ms);
    let mut rx = loop {
        match builder.open_receiver(&a.channel) {
            Ok(rx) => break rx,
            Err(e @ shmbus::Error::TypeMismatch { .. }) => return Err(e.into()),
            Err(e) if Instant::now() >= deadline => return Err(e.into()),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    println!("ready");
    if a.go_stdin {
        go(true)?;
        println!("resumed");
    }
    let mut r = Report::default();
    while Instant::now() < deadline && r.last != Some(a.count - 1) {
        match rx.recv_deadline(deadline) {
            Ok(m) => {
                match r.last {
                    Some(l) if m.seq <= l => r.duplicates += 1,
                    Some(l) => r.gaps += m.seq - l - 1,
                    None => r.gaps += m.seq,
                }
                if r.last.is_none_or(|l| m.seq > l) {
                    r.last = Some(m.seq);
                }
                assert!(
                    m.data.iter().all(|&b| b == (m.seq % 251) as u8),
                    "payload of {} corrupt",
                    m.seq
                );
                r.received += 1;
            }
            Err(RecvTimeoutError::Timeout) => break,
            // The bridge that sends here went away: its successor goes on.
            Err(RecvTimeoutError::Disconnected) => {
                r.disconnects += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    }
    r.complete = r.last == Some(a.count - 1);
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}

/// Tries to open the channel's receiver with another type; prints `refused: <error>` or
/// `accepted`, waiting up to 30 s for the channel to appear.
pub fn wrong_type(channel: &str, mpmc: bool) -> Res {
    let deadline = Instant::now() + Duration::from_secs(30);
    let b = shmbus::channel::<String>();
    loop {
        let opened = if mpmc {
            b.clone().mpmc().open_receiver(channel).map(drop)
        } else {
            b.open_receiver(channel).map(drop)
        };
        match opened {
            Ok(()) => {
                println!("accepted");
                return Ok(());
            }
            Err(e @ shmbus::Error::TypeMismatch { .. }) => {
                println!("refused: {e}");
                return Ok(());
            }
            Err(e) if Instant::now() >= deadline => return Err(e.into()),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
