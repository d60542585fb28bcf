//! A large plain-old-data struct sent without a codec: a 256 KiB video frame derives
//! `bytemuck::Pod` and goes through the ring as its bytes (one copy in, one copy out), to a
//! consumer process that checks every frame.
//!
//! Run: cargo run --release -p shmbus-examples --bin large_pod [-- FRAMES]

use bytemuck::{Pod, Zeroable};
use shmbus::codec::Plain;
use shmbus::flavor::Spsc;
use shmbus::ChannelBuilder;
use std::process::Command;
use std::time::{Duration, Instant};

const WIDTH: usize = 512;
const HEIGHT: usize = 512;

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
struct Frame {
    number: u64,
    timestamp_ns: u64,
    width: u32,
    height: u32,
    /// One byte per pixel (grey).
    pixels: [u8; WIDTH * HEIGHT],
}

fn frames() -> ChannelBuilder<Frame, Spsc, Plain> {
    // Room for 4 frames; the maximum message is the frame's size.
    ChannelBuilder::new().capacity(4).prefault(true)
}

fn checksum(f: &Frame) -> u64 {
    f.pixels
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
        .fold(0u64, |a, w| a.rotate_left(5) ^ w)
}

fn paint(f: &mut Frame, n: u64) {
    f.number = n;
    f.width = WIDTH as u32;
    f.height = HEIGHT as u32;
    for (i, p) in f.pixels.iter_mut().enumerate() {
        *p = (i as u64 + n) as u8;
    }
}

fn consume(name: &str, count: u64) -> Result<(), Box<dyn std::error::Error>> {
    let mut rx = frames().open_receiver(name)?;
    let mut expected: Box<Frame> = bytemuck::allocation::zeroed_box();
    for n in 0..count {
        let frame = rx.recv_timeout(Duration::from_secs(30))?;
        paint(&mut expected, n);
        if frame.number != n || checksum(&frame) != checksum(&expected) {
            return Err(format!("frame {n} arrived damaged").into());
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [role, name, count] = &args[..] {
        if role == "consumer" {
            return consume(name, count.parse()?);
        }
    }
    let count: u64 = args.first().map_or(Ok(500), |a| a.parse())?;
    let name = format!("/shmbus-frames-{}", std::process::id());
    let mut tx = frames().create_sender(&name)?;
    println!(
        "frame: {} bytes, ring maximum message {} bytes",
        size_of::<Frame>(),
        tx.max_message()
    );
    let mut child = Command::new(std::env::current_exe()?)
        .args(["consumer", &name, &count.to_string()])
        .spawn()?;
    let mut frame: Box<Frame> = bytemuck::allocation::zeroed_box();
    let start = Instant::now();
    for n in 0..count {
        paint(&mut frame, n);
        frame.timestamp_ns = start.elapsed().as_nanos() as u64;
        tx.send_timeout(*frame, Duration::from_secs(30))?;
    }
    let status = child.wait()?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{count} frames to process {} in {secs:.3} s ({:.2} GB/s, painting included); consumer {status}",
        child.id(),
        count as f64 * size_of::<Frame>() as f64 / secs / 1e9
    );
    if !status.success() {
        return Err("consumer failed".into());
    }
    Ok(())
}
