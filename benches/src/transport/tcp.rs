//! `tcp`: one TCP connection over loopback (127.0.0.1 only), TCP_NODELAY on both ends.

use super::{Class, Endpoint, Listening, SetupEnv, StreamEndpoint, Transport};
use anyhow::{Context, Result};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};

/// TCP over 127.0.0.1 with Nagle off.
pub struct Tcp;

fn endpoint(s: TcpStream) -> Result<Box<dyn Endpoint>> {
    s.set_nodelay(true).context("setsockopt(TCP_NODELAY)")?;
    Ok(Box::new(StreamEndpoint {
        rx: s.try_clone()?,
        tx: s,
    }))
}

impl Transport for Tcp {
    fn name(&self) -> &'static str {
        "tcp"
    }

    fn class(&self) -> Class {
        Class::Kernel
    }

    fn listen(&self, _env: &SetupEnv, _size: usize) -> Result<Listening> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind(127.0.0.1:0)")?;
        let port = listener.local_addr()?.port();
        Ok(Listening {
            arg: port.to_string(),
            child_stdin: None,
            child_stdout: None,
            finish: Box::new(move || {
                let (s, _) = listener.accept().context("accept on 127.0.0.1")?;
                endpoint(s)
            }),
        })
    }

    fn connect(&self, arg: &str, _size: usize) -> Result<Box<dyn Endpoint>> {
        let port: u16 = arg.parse().context("tcp: bad port")?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        endpoint(TcpStream::connect(addr).with_context(|| format!("connect({addr})"))?)
    }
}
