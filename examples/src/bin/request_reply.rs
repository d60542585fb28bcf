//! Request–reply over two channels: a client sends requests on one SPSC channel and waits for
//! each reply on another; a server process answers. The requests use postcard and the
//! replies bincode, to show that each channel picks its own codec.
//!
//! Run: cargo run --release -p shmbus-examples --bin request_reply [-- ROUND_TRIPS]

use serde::{Deserialize, Serialize};
use shmbus::codec::{Bincode, Postcard};
use shmbus::flavor::Spsc;
use shmbus::ChannelBuilder;
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Serialize, Deserialize, Debug)]
enum Request {
    Add(i64, i64),
    Upper(String),
    Quit,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Reply {
    Sum(i64),
    Text(String),
}

fn requests() -> ChannelBuilder<Request, Spsc, Postcard> {
    ChannelBuilder::new().capacity(16).max_message(256)
}

fn replies() -> ChannelBuilder<Reply, Spsc, Bincode> {
    ChannelBuilder::new().capacity(16).max_message(256)
}

fn serve(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut rx = requests().open_receiver(&format!("{name}-req"))?;
    let mut tx = replies().open_sender(&format!("{name}-rep"))?;
    loop {
        let reply = match rx.recv()? {
            Request::Add(a, b) => Reply::Sum(a + b),
            Request::Upper(s) => Reply::Text(s.to_uppercase()),
            Request::Quit => return Ok(()),
        };
        tx.send(reply)?;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [role, name] = &args[..] {
        if role == "server" {
            return serve(name);
        }
    }
    let rounds: i64 = args.first().map_or(Ok(20_000), |a| a.parse())?;
    let name = format!("/shmbus-rr-{}", std::process::id());
    let mut tx = requests().create_sender(&format!("{name}-req"))?;
    let mut rx = replies().create_receiver(&format!("{name}-rep"))?;
    let mut server = Command::new(std::env::current_exe()?)
        .args(["server", &name])
        .spawn()?;

    let limit = Duration::from_secs(30);
    tx.send(Request::Upper("hello over shared memory".into()))?;
    println!("server says {:?}", rx.recv_timeout(limit)?);
    let start = Instant::now();
    for i in 0..rounds {
        tx.send(Request::Add(i, 1))?;
        assert_eq!(rx.recv_timeout(limit)?, Reply::Sum(i + 1));
    }
    let per = start.elapsed() / rounds.max(1) as u32;
    tx.send(Request::Quit)?;
    let status = server.wait()?;
    println!("{rounds} request–reply round trips, {per:?} each (wait strategy: spin, then futex); server {status}");
    if !status.success() {
        return Err("server failed".into());
    }
    Ok(())
}
