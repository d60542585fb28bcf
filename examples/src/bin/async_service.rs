//! A tokio service that serves two shmbus channels and a TCP socket from one `select!` loop,
//! with no thread per channel: orders arrive on an MPMC channel from two blocking producer
//! processes, prices on an SPSC channel from a third, and TCP clients ask for the running
//! totals. The asynchronous receivers park on their doorbells (a datagram socket each, watched
//! by tokio's reactor) and cost nothing while idle.
//!
//! Run: cargo run --release -p shmbus-examples --bin async_service [-- MESSAGES_PER_PRODUCER]

use serde::{Deserialize, Serialize};
use shmbus::flavor::{Mpmc, Spsc};
use shmbus::{ChannelBuilder, RecvError};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

#[derive(Serialize, Deserialize, Debug)]
struct Order {
    client: u32,
    qty: u64,
}

#[derive(Serialize, Deserialize, Debug)]
struct Price {
    symbol: String,
    cents: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Totals {
    orders: u64,
    qty: u64,
    prices: u64,
    last_cents: u64,
}

fn orders() -> ChannelBuilder<Order, Mpmc> {
    shmbus::channel::<Order>()
        .mpmc()
        .capacity(64)
        .max_message(64)
}

fn prices() -> ChannelBuilder<Price, Spsc> {
    shmbus::channel::<Price>().capacity(64).max_message(128)
}

/// A blocking producer process: `orders NAME N ID` or `prices NAME N`.
fn produce(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let name = &args[1];
    let n: u64 = args[2].parse()?;
    if args[0] == "orders" {
        let client: u32 = args[3].parse()?;
        let mut tx = orders().open_sender(&format!("{name}-orders"))?;
        for qty in 1..=n {
            tx.send(Order { client, qty })?;
        }
    } else {
        let mut tx = prices().open_sender(&format!("{name}-prices"))?;
        for cents in 1..=n {
            tx.send(Price {
                symbol: "SHM".into(),
                cents,
            })?;
            if cents % 100 == 0 {
                // A slower feed: the service parks on it in between.
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    Ok(())
}

/// One TCP connection: each line `totals` is answered with the current totals; `bye` ends the
/// service.
async fn serve_tcp(stream: TcpStream, totals: watch::Receiver<Totals>, bye: Arc<Notify>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let reply = match line.trim() {
            "totals" => {
                let t = *totals.borrow();
                format!("{} {} {} {}\n", t.orders, t.qty, t.prices, t.last_cents)
            }
            "bye" => {
                bye.notify_one();
                "bye\n".to_string()
            }
            other => format!("unknown request {other:?}\n"),
        };
        if write.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// A TCP client that polls the totals until every message is counted, then says `bye`.
async fn client(addr: std::net::SocketAddr, want: Totals) -> std::io::Result<Totals> {
    let stream = TcpStream::connect(addr).await?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    loop {
        write.write_all(b"totals\n").await?;
        let line = lines.next_line().await?.unwrap_or_default();
        let f: Vec<u64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        if let [orders, qty, prices, last_cents] = f[..] {
            let seen = Totals {
                orders,
                qty,
                prices,
                last_cents,
            };
            if seen == want {
                write.write_all(b"bye\n").await?;
                return Ok(seen);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn spawn(args: &[&str]) -> std::io::Result<Child> {
    Command::new(std::env::current_exe()?).args(args).spawn()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if matches!(args.first().map(String::as_str), Some("orders" | "prices")) {
        return produce(&args);
    }
    let n: u64 = args.first().map_or(Ok(20_000), |a| a.parse())?;
    let name = format!("/shmbus-async-svc-{}", std::process::id());
    let mut order_rx = orders()
        .create_receiver(&format!("{name}-orders"))?
        .into_async()?;
    let mut price_rx = prices()
        .create_receiver(&format!("{name}-prices"))?
        .into_async()?;
    // The orders channel is disconnected once every sender that attached is gone: one
    // producer that finishes before the other has attached would end it early. The service
    // keeps a sender of its own until both producers' orders are in.
    let mut keep_orders_open = Some(orders().open_sender(&format!("{name}-orders"))?);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let count = n.to_string();
    let mut children = vec![
        spawn(&["orders", &name, &count, "1"])?,
        spawn(&["orders", &name, &count, "2"])?,
        spawn(&["prices", &name, &count])?,
    ];
    let want = Totals {
        orders: 2 * n,
        qty: n * (n + 1),
        prices: n,
        last_cents: n,
    };
    let asker = tokio::spawn(client(addr, want));

    let (totals_tx, totals_rx) = watch::channel(Totals::default());
    let bye = Arc::new(Notify::new());
    let mut totals = Totals::default();
    let (mut orders_open, mut prices_open) = (true, true);
    loop {
        tokio::select! {
            order = order_rx.recv(), if orders_open => match order {
                Ok(o) => {
                    totals.orders += 1;
                    totals.qty += o.qty;
                    if totals.orders == want.orders {
                        drop(keep_orders_open.take());
                    }
                }
                // Both producers finished (or died: their probe says so).
                Err(RecvError::Disconnected) => orders_open = false,
                Err(e) => return Err(e.into()),
            },
            price = price_rx.recv(), if prices_open => match price {
                Ok(p) => {
                    totals.prices += 1;
                    totals.last_cents = p.cents;
                }
                Err(RecvError::Disconnected) => prices_open = false,
                Err(e) => return Err(e.into()),
            },
            conn = listener.accept() => {
                let (stream, _) = conn?;
                tokio::spawn(serve_tcp(stream, totals_rx.clone(), Arc::clone(&bye)));
            }
            () = bye.notified() => break,
        }
        totals_tx.send_replace(totals);
    }
    let seen = tokio::time::timeout(Duration::from_secs(60), asker).await???;
    for c in &mut children {
        let status = c.wait()?;
        if !status.success() {
            return Err(format!("a producer failed: {status}").into());
        }
    }
    println!(
        "served {} orders (total quantity {}) and {} prices (last {} cents) from two shmbus \
         channels and a TCP socket in one select! loop",
        seen.orders, seen.qty, seen.prices, seen.last_cents
    );
    Ok(())
}
