//! A forked child on an anonymous channel: the parent creates the channel in an anonymous
//! shared mapping, forks, and the child (which inherits the mapping) sends readings back.
//! Nothing has a name; nothing else can reach the channel.
//!
//! Run: cargo run --release -p shmbus-examples --bin fork_child

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Reading {
    sensor: u16,
    celsius: f32,
    note: Option<String>,
}

const READINGS: u16 = 1000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Create the channel before forking, attach endpoints after: each process attaches the
    // end it uses, under its own pid.
    let ch = shmbus::channel::<Reading>().capacity(64).anonymous()?;

    // SAFETY: this process is single-threaded here (no thread has been started), so the child
    // may run ordinary Rust code after the fork.
    match unsafe { fork() }? {
        ForkResult::Child => {
            let code = match child(&ch) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("child: {e}");
                    1
                }
            };
            std::process::exit(code);
        }
        ForkResult::Parent { child } => {
            let mut rx = ch.receiver()?;
            drop(ch);
            let mut n = 0u16;
            // Ends when the child's sender is gone (the child exited) and the channel is drained.
            for r in rx.iter() {
                assert_eq!(r.sensor, n);
                n += 1;
            }
            let status = waitpid(child, None)?;
            println!("parent: {n} readings from child {child}; child {status:?}");
            if n != READINGS || !matches!(status, WaitStatus::Exited(_, 0)) {
                return Err("the child did not deliver every reading".into());
            }
            Ok(())
        }
    }
}

fn child(ch: &shmbus::Channel<Reading>) -> Result<(), Box<dyn std::error::Error>> {
    let mut tx = ch.sender()?;
    for sensor in 0..READINGS {
        tx.send(Reading {
            sensor,
            celsius: 20.0 + f32::from(sensor % 10) / 10.0,
            note: (sensor % 100 == 0).then(|| format!("calibrated at {sensor}")),
        })?;
    }
    Ok(())
}
