//! Test guest, never install it for real: tries to escape the sandbox the way a hostile
//! plugin would, through Rust's standard library (which reaches WASI), and reports what it
//! got. The input names one attempt; the output is `denied: <error>` when the attempt failed
//! and `allowed: <what it obtained>` when it did not, so that a leak shows up in the output.

use std::io::Write;
use std::net::{TcpListener, TcpStream, ToSocketAddrs, UdpSocket};

struct Probe;

impl sop_plugin::Compute for Probe {
    fn run(input: &[u8]) -> Result<Vec<u8>, String> {
        let input = std::str::from_utf8(input).map_err(|_| "input is not UTF-8".to_string())?;
        let (what, arg) = input.split_once(' ').unwrap_or((input, ""));
        let outcome = match what {
            "read" => read(arg),
            "write" => std::fs::write(arg, b"escaped").map(|()| format!("wrote {arg}")).map_err(text),
            "list" => list(arg),
            "connect" => connect(arg),
            "listen" => {
                TcpListener::bind(arg).and_then(|l| l.local_addr()).map(|a| format!("listening on {a}")).map_err(text)
            }
            "udp" => UdpSocket::bind("0.0.0.0:0")
                .and_then(|s| s.send_to(b"escaped", arg))
                .map(|n| format!("sent {n} bytes"))
                .map_err(text),
            "lookup" => lookup(arg),
            "env" => std::env::var(arg).map_err(text),
            "environ" => nonempty(std::env::vars().map(|(k, v)| format!("{k}={v}")).collect()),
            "args" => nonempty(std::env::args().collect()),
            "preopens" => preopens(),
            _ => return Err(format!("unknown probe {what:?}")),
        };
        Ok(match outcome {
            Ok(got) => format!("allowed: {got}"),
            Err(why) => format!("denied: {why}"),
        }
        .into_bytes())
    }
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// An empty listing is a denial: there was nothing to see.
fn nonempty(items: Vec<String>) -> Result<String, String> {
    if items.is_empty() { Err("nothing there".into()) } else { Ok(items.join("\n")) }
}

fn read(path: &str) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(text)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn list(path: &str) -> Result<String, String> {
    let entries = std::fs::read_dir(path).map_err(text)?;
    nonempty(
        entries
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()).map_err(text))
            .collect::<Result<_, _>>()?,
    )
}

fn connect(addr: &str) -> Result<String, String> {
    // No reply is awaited: the listener never answers, and the call must not outlive it.
    TcpStream::connect(addr).and_then(|mut s| s.write_all(b"escaped")).map_err(text)?;
    Ok(format!("connected to {addr}"))
}

fn lookup(host: &str) -> Result<String, String> {
    let addrs = (host, 80).to_socket_addrs().map_err(text)?;
    nonempty(addrs.map(|a| a.to_string()).collect())
}

/// `wasi:filesystem/preopens.get-directories`, called directly: the standard library has no
/// way to list what the host preopened, and a guest need not go through it.
fn preopens() -> Result<String, String> {
    #[link(wasm_import_module = "wasi:filesystem/preopens@0.2.0")]
    unsafe extern "C" {
        #[link_name = "get-directories"]
        fn get_directories(ret: *mut [usize; 2]);
    }
    let mut list = [0usize; 2];
    // SAFETY: the canonical ABI writes the list's address and length to `ret`; each element
    // is a descriptor handle (u32) and a string (address, length), 12 bytes, allocated with
    // this module's `cabi_realloc`.
    let names = unsafe {
        get_directories(&mut list);
        let [ptr, len] = list;
        (0..len)
            .map(|i| {
                let elem = (ptr + i * 12) as *const u32;
                let (s, n) = (*elem.add(1) as usize, *elem.add(2) as usize);
                String::from_utf8_lossy(std::slice::from_raw_parts(s as *const u8, n)).into_owned()
            })
            .collect()
    };
    nonempty(names)
}

sop_plugin::export_compute!(Probe);
