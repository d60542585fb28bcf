//! A large plain-old-data struct sent without a codec: a 16 KiB video frame (128 x 128 grey
//! pixels and a header) derives `bytemuck::Pod` and goes through the ring as its bytes (one
//! copy in, one copy out), to a consumer process that checks every frame. (Any size up to the
//! ring's capacity works the same; the frame is kept at 16 KiB because rustc/LLVM take minutes
//! to optimize code that moves a 256 KiB array by value, and `cargo test` builds this example.)
//!
//! Run: cargo run --release -p shmbus-examples --bin large_pod [-- FRAMES]

use bytemuck::{Pod, Zeroable};
use shmbus::codec::Plain;
use shmbus::flavor::Spsc;
use shmbus::ChannelBuilder;
use std::process::Command;
use std::time::{Duration, Instant};

const WIDTH: usize = 128;
const HEIGHT: usize = 128;

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
    checksum_bytes(&f.pixels)
}

// The pixel loops take slices, not the array: with its length known at compile time,
// LLVM spends minutes optimizing them (and `cargo test` builds this example too).
#[inline(never)]
fn checksum_bytes(pixels: &[u8]) -> u64 {
    pixels
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
        .fold(0u64, |a, w| a.rotate_left(5) ^ w)
}

fn paint(f: &mut Frame, n: u64) {
    f.number = n;
    f.width = WIDTH as u32;
    f.height = HEIGHT as u32;
    paint_bytes(&mut f.pixels, n);
}

#[inline(never)]
fn paint_bytes(pixels: &mut [u8], n: u64) {
    for (i, p) in pixels.iter_mut().enumerate() {
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
