//! `nbd`: the NBD client protocol driver, for an export of qemu-nbd,
//! qemu-storage-daemon or any NBD server, over a Unix or TCP socket.
//!
//! It takes QEMU's names and options: `nbd://host[:port]/export`,
//! `nbd+tcp://...`, `nbd+unix:///export?socket=PATH`,
//! `nbd:unix:PATH[:exportname=X]`, `nbd:HOST:PORT[:exportname=X]`, and
//! `server.type=unix|inet`, `server.path`, `server.host`, `server.port`,
//! `export` (with the legacy `path`, `host`, `port`), `reconnect-delay`.
//! The handshake is fixed newstyle with `NBD_OPT_GO` (falling back to
//! `NBD_OPT_EXPORT_NAME` on an old server) or oldstyle; structured replies
//! and the `base:allocation` meta context are asked for where the server
//! has them. Transmission is one request at a time (the block layer is
//! blocking): READ, WRITE (with FUA when asked), FLUSH, TRIM,
//! WRITE_ZEROES, BLOCK_STATUS (for `map`) and, on close, DISCONNECT.
//! Requests are cut to the export's maximum block size, and unaligned ones
//! widened (reads) or read-modify-written (writes) to its minimum block
//! size. A lost connection fails the request that finds it, and every later
//! one, with EIO, unless `reconnect-delay=N`: then the driver keeps
//! connecting again for up to N seconds and retries the request. Errors are worded as QEMU's.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::driver::{OnProgress, Prealloc};
use super::{BlockDriver, NodeInfo, OpenFlags, OptionMap, Role, WriteFlags, errno, strerror};

const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
const OLDSTYLE_MAGIC: u64 = 0x0000_4202_8186_1253;
const REP_MAGIC: u64 = 0x0003_e889_0455_65a9;
const REQUEST_MAGIC: u32 = 0x2560_9513;
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;
const CHUNK_DONE: u16 = 1;
const CHUNK_NONE: u16 = 0;
const CHUNK_OFFSET_DATA: u16 = 1;
const CHUNK_OFFSET_HOLE: u16 = 2;
const CHUNK_BLOCK_STATUS: u16 = 5;
const CHUNK_ERROR_BIT: u16 = 1 << 15;
/// Block status: the extent reads as a hole.
const STATE_HOLE: u32 = 1;
/// Block status: the extent reads as zeros.
const STATE_ZERO: u32 = 2;

const FLAG_FIXED_NEWSTYLE: u16 = 1;
const FLAG_NO_ZEROES: u16 = 2;

const OPT_EXPORT_NAME: u32 = 1;
const OPT_ABORT: u32 = 2;
const OPT_GO: u32 = 7;
const OPT_STRUCTURED_REPLY: u32 = 8;
const OPT_SET_META_CONTEXT: u32 = 10;
const REP_META_CONTEXT: u32 = 4;
const BASE_ALLOCATION: &str = "base:allocation";
const REP_ACK: u32 = 1;
const REP_INFO: u32 = 3;
const REP_ERR: u32 = 1 << 31;
const REP_ERR_UNSUP: u32 = REP_ERR | 1;
const INFO_EXPORT: u16 = 0;
const INFO_BLOCK_SIZE: u16 = 3;

const TFLAG_READ_ONLY: u16 = 1 << 1;
const TFLAG_SEND_FLUSH: u16 = 1 << 2;
const TFLAG_SEND_FUA: u16 = 1 << 3;
const TFLAG_SEND_TRIM: u16 = 1 << 5;
const TFLAG_SEND_WRITE_ZEROES: u16 = 1 << 6;
const TFLAG_SEND_FAST_ZERO: u16 = 1 << 11;

const CMD_READ: u16 = 0;
const CMD_WRITE: u16 = 1;
const CMD_DISC: u16 = 2;
const CMD_FLUSH: u16 = 3;
const CMD_TRIM: u16 = 4;
const CMD_WRITE_ZEROES: u16 = 6;
const CMD_BLOCK_STATUS: u16 = 7;
const CMD_FLAG_REQ_ONE: u16 = 8;
const CMD_FLAG_FUA: u16 = 1;
const CMD_FLAG_NO_HOLE: u16 = 2;
const CMD_FLAG_FAST_ZERO: u16 = 16;

/// The NBD port a TCP address without one gets.
const DEFAULT_PORT: &str = "10809";
/// The largest request without a server limit (QEMU's NBD_MAX_BUFFER_SIZE).
const MAX_BUFFER: u32 = 32 << 20;
/// The longest export name the protocol carries.
const MAX_NAME: usize = 4096;

/// Where the server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Addr {
    Unix(String),
    Inet { host: String, port: String },
}

impl Addr {
    fn describe(&self) -> String {
        match self {
            Addr::Unix(p) => p.clone(),
            Addr::Inet { host, port } => format!("{host}:{port}"),
        }
    }
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What the handshake learnt of the export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Export {
    size: u64,
    flags: u16,
    min_block: u32,
    max_block: u32,
    /// Structured replies were agreed on.
    structured: bool,
    /// The id of the `base:allocation` meta context, if the server has it.
    allocation_ctx: Option<u32>,
}

impl Export {
    fn plain(size: u64, flags: u16) -> Export {
        Export {
            size,
            flags,
            min_block: 1,
            max_block: MAX_BUFFER,
            structured: false,
            allocation_ctx: None,
        }
    }
}

struct Conn {
    stream: Option<Stream>,
    handle: u64,
    /// When the connection was lost (the reconnect window starts there).
    lost_at: Option<Instant>,
}

pub struct NbdNode {
    addr: Addr,
    export_name: String,
    info: Export,
    reconnect_delay: Duration,
    conn: Mutex<Conn>,
}

/// `driver=nbd` with QEMU's options, or a `filename` in one of QEMU's NBD
/// forms.
pub fn open(opts: &mut OptionMap, flags: &OpenFlags) -> Result<Arc<dyn BlockDriver>, String> {
    let (addr, export_name) = take_address(opts)?;
    let reconnect_delay = match opts.take("reconnect-delay") {
        None => 0,
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| "Parameter 'reconnect-delay' expects a number".to_string())?,
    };
    if let Some(v) = opts.take("open-timeout") {
        v.parse::<u64>()
            .map_err(|_| "Parameter 'open-timeout' expects a number".to_string())?;
    }
    if let Some(id) = opts.take("tls-creds") {
        return Err(format!("No TLS credentials with id '{id}'"));
    }
    let mut stream = connect(&addr)?;
    let info = handshake(&mut stream, &export_name)?;
    if info.flags & TFLAG_READ_ONLY != 0 && !flags.read_only {
        return Err("Could not open image: Permission denied".into());
    }
    Ok(Arc::new(NbdNode {
        addr,
        export_name,
        info,
        reconnect_delay: Duration::from_secs(reconnect_delay),
        conn: Mutex::new(Conn {
            stream: Some(stream),
            handle: 0,
            lost_at: None,
        }),
    }))
}

/// The address and export name from the options, as QEMU's nbd driver
/// reads them (a `filename` is parsed into them first).
fn take_address(opts: &mut OptionMap) -> Result<(Addr, String), String> {
    if let Some(name) = opts.take("filename") {
        let has_other = ["export", "path", "host", "port"]
            .iter()
            .any(|k| opts.contains(k))
            || opts.has_child("server");
        if has_other {
            return Err(
                "host/port/export/path and a file name may not be used at the same time".into(),
            );
        }
        return parse_filename(&name);
    }
    let export = opts.take("export").unwrap_or_default();
    let (path, host, port) = (opts.take("path"), opts.take("host"), opts.take("port"));
    let mut server = opts.take_child("server");
    let addr = if path.is_some() || host.is_some() || port.is_some() {
        if path.is_some() && host.is_some() {
            return Err("path and host may not be used at the same time".into());
        }
        if path.is_some() && port.is_some() {
            return Err("port may not be used without host".into());
        }
        if server.take("type").is_some() || !server.is_empty() {
            return Err("Cannot use 'server' and path/host/port at the same time".into());
        }
        match path {
            Some(p) => Addr::Unix(p),
            None => Addr::Inet {
                host: host.unwrap_or_default(),
                port: port.unwrap_or_else(|| DEFAULT_PORT.into()),
            },
        }
    } else {
        let Some(kind) = server.take("type") else {
            if server.is_empty() {
                return Err("NBD server address missing".into());
            }
            return Err("Parameter 'type' is missing".into());
        };
        let addr = match kind.as_str() {
            "unix" => {
                let path = server.take("path").ok_or("Parameter 'path' is missing")?;
                server.take_bool("abstract")?;
                server.take_bool("tight")?;
                Addr::Unix(path)
            }
            "inet" => {
                let host = server.take("host").ok_or("Parameter 'host' is missing")?;
                let port = server.take("port").ok_or("Parameter 'port' is missing")?;
                for k in ["numeric", "ipv4", "ipv6", "keep-alive"] {
                    server.take_bool(k)?;
                }
                Addr::Inet { host, port }
            }
            other => return Err(format!("Parameter 'type' does not accept value '{other}'")),
        };
        if let Some(k) = server.first_key() {
            return Err(format!("Parameter '{k}' is unexpected"));
        }
        addr
    };
    Ok((addr, export))
}

/// QEMU's NBD file names: the URI forms and the legacy `nbd:` form.
fn parse_filename(name: &str) -> Result<(Addr, String), String> {
    if let Some((scheme, rest)) = name.split_once("://")
        && scheme.starts_with("nbd")
    {
        if !matches!(scheme, "nbd" | "nbd+tcp" | "nbd+unix") {
            return Err(format!("Unknown protocol '{scheme}'"));
        }
        return parse_uri(scheme, rest).ok_or_else(|| "No valid URL specified".to_string());
    }
    let Some(rest) = name.strip_prefix("nbd:") else {
        let proto = name.split(':').next().unwrap_or(name);
        return Err(format!("Unknown protocol '{proto}'"));
    };
    let (spec, export) = match rest.find(":exportname=") {
        Some(at) => (&rest[..at], rest[at + ":exportname=".len()..].to_string()),
        None => (rest, String::new()),
    };
    if spec.is_empty() {
        return Err("NBD server address missing".into());
    }
    if let Some(path) = spec.strip_prefix("unix:") {
        return Ok((Addr::Unix(path.to_string()), export));
    }
    let bad = || format!("error parsing address '{spec}'");
    let (host, port) = match spec.strip_prefix('[') {
        Some(v6) => v6.split_once("]:").ok_or_else(bad)?,
        None => match spec.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => return Err(bad()),
            Some(hp) => hp,
            None => return Err(bad()),
        },
    };
    if port.is_empty() {
        return Err(bad());
    }
    let addr = Addr::Inet {
        host: host.to_string(),
        port: port.to_string(),
    };
    Ok((addr, export))
}

/// `nbd[+tcp|+unix]://[host[:port]]/[export][?socket=PATH]`; `None` is
/// QEMU's "No valid URL specified".
fn parse_uri(scheme: &str, rest: &str) -> Option<(Addr, String)> {
    let unix = match scheme {
        "nbd" | "nbd+tcp" => false,
        "nbd+unix" => true,
        _ => return None,
    };
    let (authority, rest) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let export = percent_decode(path.strip_prefix('/').unwrap_or(path))?;
    if unix {
        let socket = query?.strip_prefix("socket=")?;
        if !authority.is_empty() || socket.contains('&') {
            return None;
        }
        return Some((Addr::Unix(percent_decode(socket)?), export));
    }
    if query.is_some() {
        return None;
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, p) = v6.split_once(']')?;
            match p.strip_prefix(':') {
                Some(port) => (h, port),
                None if p.is_empty() => (h, ""),
                None => return None,
            }
        }
        None => authority.split_once(':').unwrap_or((authority, "")),
    };
    if host.is_empty() {
        return None;
    }
    let port = if port.is_empty() { DEFAULT_PORT } else { port };
    let addr = Addr::Inet {
        host: percent_decode(host)?,
        port: port.to_string(),
    };
    Some((addr, export))
}

/// `%XX` escapes decoded; `None` for a bad escape or text that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn connect(addr: &Addr) -> Result<Stream, String> {
    let fail = |e: io::Error| {
        format!(
            "Failed to connect to '{}': {}",
            addr.describe(),
            strerror(&e)
        )
    };
    match addr {
        Addr::Unix(path) => UnixStream::connect(path).map(Stream::Unix).map_err(fail),
        Addr::Inet { host, port } => {
            let resolved = port
                .parse::<u16>()
                .ok()
                .and_then(|p| (host.as_str(), p).to_socket_addrs().ok());
            let Some(list) = resolved else {
                return Err(format!(
                    "address resolution failed for {host}:{port}: Name or service not known"
                ));
            };
            let mut last = io::Error::from_raw_os_error(libc::ECONNREFUSED);
            for a in list {
                match TcpStream::connect(a) {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        return Ok(Stream::Tcp(s));
                    }
                    Err(e) => last = e,
                }
            }
            Err(fail(last))
        }
    }
}

/// Reads `buf` whole; `what` names it in QEMU's error.
fn recv(s: &mut Stream, buf: &mut [u8], what: &str) -> Result<(), String> {
    s.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            format!("Failed to read {what}: Unexpected end-of-file before all data were read")
        } else {
            format!("Failed to read {what}: {}", strerror(&e))
        }
    })
}

fn recv_u16(s: &mut Stream, what: &str) -> Result<u16, String> {
    let mut b = [0u8; 2];
    recv(s, &mut b, what)?;
    Ok(u16::from_be_bytes(b))
}

fn recv_u32(s: &mut Stream, what: &str) -> Result<u32, String> {
    let mut b = [0u8; 4];
    recv(s, &mut b, what)?;
    Ok(u32::from_be_bytes(b))
}

fn recv_u64(s: &mut Stream, what: &str) -> Result<u64, String> {
    let mut b = [0u8; 8];
    recv(s, &mut b, what)?;
    Ok(u64::from_be_bytes(b))
}

fn send(s: &mut Stream, buf: &[u8], what: &str) -> Result<(), String> {
    s.write_all(buf)
        .map_err(|e| format!("Failed to send {what}: {}", strerror(&e)))
}

/// Negotiates `export` on a fresh connection.
fn handshake(s: &mut Stream, export: &str) -> Result<Export, String> {
    if export.len() > MAX_NAME {
        return Err("export name too long to send to server".into());
    }
    let magic = recv_u64(s, "initial magic")?;
    if magic != NBDMAGIC {
        return Err(format!("Bad initial magic received: 0x{magic:x}"));
    }
    let magic = recv_u64(s, "server magic")?;
    if magic == OLDSTYLE_MAGIC {
        if !export.is_empty() {
            return Err("Server does not support non-empty export names".into());
        }
        let size = recv_u64(s, "export length")?;
        let flags = recv_u32(s, "export flags")?;
        let mut pad = [0u8; 124];
        recv(s, &mut pad, "export flags padding")?;
        return Ok(Export::plain(size, flags as u16));
    }
    if magic != IHAVEOPT {
        return Err(format!("Bad server magic received: 0x{magic:x}"));
    }
    let global = recv_u16(s, "server flags")?;
    let no_zeroes = global & FLAG_NO_ZEROES != 0;
    let client = u32::from(global & (FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES));
    send(s, &client.to_be_bytes(), "client flags")?;
    if global & FLAG_FIXED_NEWSTYLE != 0 {
        let structured = ask_structured(s)?;
        let allocation_ctx = match structured {
            true => ask_allocation_context(s, export)?,
            false => None,
        };
        // NBD_OPT_GO: the name, and one info request (block sizes).
        let mut data = Vec::with_capacity(export.len() + 8);
        data.extend_from_slice(&(export.len() as u32).to_be_bytes());
        data.extend_from_slice(export.as_bytes());
        data.extend_from_slice(&1u16.to_be_bytes());
        data.extend_from_slice(&INFO_BLOCK_SIZE.to_be_bytes());
        send_option(s, OPT_GO, &data)?;
        match go_replies(s) {
            Ok(Some(info)) => {
                return Ok(Export {
                    structured,
                    allocation_ctx,
                    ..info
                });
            }
            Ok(None) => {}
            Err(e) => {
                // Ends the negotiation politely, so the server does not
                // log a failed read of the next option.
                let _ = send_option(s, OPT_ABORT, &[]);
                return Err(e);
            }
        }
    }
    send_option(s, OPT_EXPORT_NAME, export.as_bytes())?;
    let size = recv_u64(s, "export length")?;
    let flags = recv_u16(s, "export flags")?;
    if !no_zeroes {
        let mut pad = [0u8; 124];
        recv(s, &mut pad, "export flags padding")?;
    }
    Ok(Export::plain(size, flags))
}

fn send_option(s: &mut Stream, opt: u32, data: &[u8]) -> Result<(), String> {
    let mut buf = Vec::with_capacity(16 + data.len());
    buf.extend_from_slice(&IHAVEOPT.to_be_bytes());
    buf.extend_from_slice(&opt.to_be_bytes());
    buf.extend_from_slice(&(data.len() as u32).to_be_bytes());
    buf.extend_from_slice(data);
    send(s, &buf, "option request")
}

/// One option reply: its type and data (bounded).
fn option_reply(s: &mut Stream, want: u32) -> Result<(u32, Vec<u8>), String> {
    let magic = recv_u64(s, "option reply magic")?;
    if magic != REP_MAGIC {
        return Err(format!("Unexpected option reply magic 0x{magic:x}"));
    }
    let opt = recv_u32(s, "option reply option")?;
    let kind = recv_u32(s, "option reply type")?;
    let len = recv_u32(s, "option reply length")?;
    if opt != want {
        return Err(format!("Unexpected option reply for option {opt}"));
    }
    if len > 64 * 1024 {
        return Err(format!("server's reply length {len} is too long"));
    }
    let mut data = vec![0u8; len as usize];
    recv(s, &mut data, "option reply")?;
    Ok((kind, data))
}

/// NBD_OPT_STRUCTURED_REPLY: true if the server agrees (a server without
/// it, or one that refuses, leaves simple replies).
fn ask_structured(s: &mut Stream) -> Result<bool, String> {
    send_option(s, OPT_STRUCTURED_REPLY, &[])?;
    let (kind, _) = option_reply(s, OPT_STRUCTURED_REPLY)?;
    Ok(kind == REP_ACK)
}

/// NBD_OPT_SET_META_CONTEXT for `base:allocation`: its id, if the server
/// has it.
fn ask_allocation_context(s: &mut Stream, export: &str) -> Result<Option<u32>, String> {
    let mut data = Vec::with_capacity(export.len() + 27);
    data.extend_from_slice(&(export.len() as u32).to_be_bytes());
    data.extend_from_slice(export.as_bytes());
    data.extend_from_slice(&1u32.to_be_bytes());
    data.extend_from_slice(&(BASE_ALLOCATION.len() as u32).to_be_bytes());
    data.extend_from_slice(BASE_ALLOCATION.as_bytes());
    send_option(s, OPT_SET_META_CONTEXT, &data)?;
    let mut id = None;
    loop {
        let (kind, data) = option_reply(s, OPT_SET_META_CONTEXT)?;
        match kind {
            REP_META_CONTEXT if data.len() >= 4 => {
                if &data[4..] == BASE_ALLOCATION.as_bytes() {
                    id = Some(u32::from_be_bytes([data[0], data[1], data[2], data[3]]));
                }
            }
            REP_ACK => return Ok(id),
            // Refused (or not known): no block status, as QEMU goes on.
            k if k & REP_ERR != 0 => return Ok(None),
            k => return Err(format!("Unexpected reply type {k} for option 10")),
        }
    }
}

/// The server's answers to NBD_OPT_GO; `None` when it does not know the
/// option (the caller falls back to NBD_OPT_EXPORT_NAME).
fn go_replies(s: &mut Stream) -> Result<Option<Export>, String> {
    let mut info = Export::plain(0, 0);
    let mut have_export = false;
    loop {
        let (kind, data) = option_reply(s, OPT_GO)?;
        match kind {
            REP_ACK if have_export => return Ok(Some(info)),
            REP_ACK => return Err("server sent no export information".into()),
            REP_INFO if data.len() >= 2 => {
                let which = u16::from_be_bytes([data[0], data[1]]);
                match which {
                    INFO_EXPORT if data.len() == 12 => {
                        info.size = u64::from_be_bytes(data[2..10].try_into().unwrap_or_default());
                        info.flags = u16::from_be_bytes([data[10], data[11]]);
                        have_export = true;
                    }
                    INFO_BLOCK_SIZE if data.len() == 14 => {
                        let word = |at: usize| {
                            u32::from_be_bytes(data[at..at + 4].try_into().unwrap_or_default())
                        };
                        info.min_block = word(2).max(1);
                        info.max_block = word(10).clamp(info.min_block, MAX_BUFFER);
                    }
                    // Other information is optional to understand.
                    _ => {}
                }
            }
            REP_INFO => return Err("server sent a malformed info reply".into()),
            REP_ERR_UNSUP => return Ok(None),
            k if k & REP_ERR != 0 => return Err(option_error(k, &data)),
            k => return Err(format!("Unexpected reply type {k} for option 7 (go)")),
        }
    }
}

/// QEMU's line for an option error reply (and the server's own message).
fn option_error(kind: u32, msg: &[u8]) -> String {
    let what = "option 7 (go)";
    let mut line = match kind & !REP_ERR {
        2 => format!("Denied by server for {what}"),
        3 => format!("Invalid parameters for {what}"),
        4 => "Server lacks support for option".to_string(),
        5 => format!("TLS negotiation required before {what}"),
        6 => "Requested export not available".to_string(),
        7 => format!("Server shutting down before {what}"),
        8 => format!("Server requires INFO_BLOCK_SIZE for {what}"),
        _ => format!("Unknown error code when asking for {what}"),
    };
    if !msg.is_empty() {
        line.push_str(&format!(
            "\nserver reported: {}",
            String::from_utf8_lossy(msg)
        ));
    }
    line
}

/// A server's NBD error as the errno it names (QEMU's `nbd_errno_to_system_errno`).
fn server_errno(e: u32) -> io::Error {
    let code = match e {
        1 => libc::EPERM,
        5 => libc::EIO,
        12 => libc::ENOMEM,
        22 => libc::EINVAL,
        28 => libc::ENOSPC,
        75 => libc::EOVERFLOW,
        95 => libc::ENOTSUP,
        108 => libc::ESHUTDOWN,
        _ => libc::EINVAL,
    };
    io::Error::from_raw_os_error(code)
}

/// What a request carries out, or back.
enum Payload<'a> {
    None,
    Out(&'a [&'a [u8]]),
    In(&'a mut [u8]),
    /// Block status: the first extent (length, flags) of the context.
    Status(u32, &'a mut Option<(u32, u32)>),
}

/// The transport failed (the connection is gone), or the server said no.
enum Failure {
    Transport,
    Server(io::Error),
}

impl NbdNode {
    fn lock(&self) -> MutexGuard<'_, Conn> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One request and its reply; a lost connection is reconnected within
    /// `reconnect-delay` and the request sent again, else EIO (this
    /// request and every later one).
    fn request(
        &self,
        cmd: u16,
        flags: u16,
        offset: u64,
        len: u32,
        mut payload: Payload<'_>,
    ) -> io::Result<()> {
        let mut conn = self.lock();
        loop {
            // Without a reconnect delay a lost connection stays lost, as
            // QEMU's client leaves it.
            if conn.stream.is_none()
                && (self.reconnect_delay.is_zero() || !self.reconnect(&mut conn))
            {
                return Err(errno(Errno::EIO));
            }
            conn.handle += 1;
            let handle = conn.handle;
            let Some(stream) = conn.stream.as_mut() else {
                continue;
            };
            match exchange(stream, cmd, flags, handle, offset, len, &mut payload) {
                Ok(()) => return Ok(()),
                Err(Failure::Server(e)) => return Err(e),
                Err(Failure::Transport) => {
                    conn.stream = None;
                    conn.lost_at.get_or_insert_with(Instant::now);
                }
            }
        }
    }

    /// Connects again until `reconnect-delay` after the loss has passed;
    /// true once connected to the same export.
    fn reconnect(&self, conn: &mut Conn) -> bool {
        let lost = *conn.lost_at.get_or_insert_with(Instant::now);
        let deadline = lost + self.reconnect_delay;
        loop {
            if let Ok(mut s) = connect(&self.addr)
                && let Ok(info) = handshake(&mut s, &self.export_name)
                && info.size == self.info.size
            {
                conn.stream = Some(s);
                conn.lost_at = None;
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100).min(deadline - now));
        }
    }

    fn has(&self, flag: u16) -> bool {
        self.info.flags & flag != 0
    }

    fn align(&self) -> u64 {
        u64::from(self.info.min_block)
    }

    /// The largest request, a multiple of the minimum block size.
    fn max_request(&self) -> u64 {
        let a = self.align();
        (u64::from(self.info.max_block) / a * a).max(a)
    }

    /// Reads an aligned range, in requests of at most the maximum size.
    fn read_aligned(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let max = self.max_request() as usize;
        for (i, chunk) in buf.chunks_mut(max).enumerate() {
            let at = offset + (i * max) as u64;
            self.request(CMD_READ, 0, at, chunk.len() as u32, Payload::In(chunk))?;
        }
        Ok(())
    }

    /// Writes the concatenation of `bufs` (aligned), in requests of at
    /// most the maximum size.
    fn write_aligned(
        &self,
        offset: u64,
        bufs: &[&[u8]],
        flags: WriteFlags,
        progress: OnProgress<'_>,
    ) -> io::Result<()> {
        let max = self.max_request() as usize;
        let fua = flags.fua && self.has(TFLAG_SEND_FUA);
        let cmd_flags = if fua { CMD_FLAG_FUA } else { 0 };
        let mut at = offset;
        let mut pending: Vec<&[u8]> = Vec::new();
        let mut pending_len = 0usize;
        let send = |pending: &mut Vec<&[u8]>, n: &mut usize, at: &mut u64| {
            if *n == 0 {
                return Ok(());
            }
            self.request(CMD_WRITE, cmd_flags, *at, *n as u32, Payload::Out(pending))?;
            progress(*n as u64);
            *at += *n as u64;
            pending.clear();
            *n = 0;
            Ok::<(), io::Error>(())
        };
        for b in bufs {
            let mut rest = *b;
            while !rest.is_empty() {
                let take = (max - pending_len).min(rest.len());
                pending.push(&rest[..take]);
                pending_len += take;
                rest = &rest[take..];
                if pending_len == max {
                    send(&mut pending, &mut pending_len, &mut at)?;
                }
            }
        }
        send(&mut pending, &mut pending_len, &mut at)?;
        if flags.fua && !fua {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends a range command (trim, write-zeroes) cut to the maximum size.
    fn range_command(&self, cmd: u16, flags: u16, offset: u64, len: u64) -> io::Result<()> {
        let max = self.max_request();
        let mut done = 0;
        while done < len {
            let n = (len - done).min(max);
            self.request(cmd, flags, offset + done, n as u32, Payload::None)?;
            done += n;
        }
        Ok(())
    }
}

/// A request's 28 header bytes.
fn request_header(cmd: u16, flags: u16, handle: u64, offset: u64, len: u32) -> [u8; 28] {
    let mut req = [0u8; 28];
    req[0..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
    req[4..6].copy_from_slice(&flags.to_be_bytes());
    req[6..8].copy_from_slice(&cmd.to_be_bytes());
    req[8..16].copy_from_slice(&handle.to_be_bytes());
    req[16..24].copy_from_slice(&offset.to_be_bytes());
    req[24..28].copy_from_slice(&len.to_be_bytes());
    req
}

/// Sends one request and reads its reply (simple, or structured chunks up
/// to the one marked done).
fn exchange(
    s: &mut Stream,
    cmd: u16,
    flags: u16,
    handle: u64,
    offset: u64,
    len: u32,
    payload: &mut Payload<'_>,
) -> Result<(), Failure> {
    let t = |_: io::Error| Failure::Transport;
    s.write_all(&request_header(cmd, flags, handle, offset, len))
        .map_err(t)?;
    if let Payload::Out(bufs) = payload {
        for b in bufs.iter() {
            s.write_all(b).map_err(t)?;
        }
    }
    let mut error = None;
    loop {
        let mut magic = [0u8; 4];
        s.read_exact(&mut magic).map_err(t)?;
        match u32::from_be_bytes(magic) {
            SIMPLE_REPLY_MAGIC => {
                let mut rest = [0u8; 12];
                s.read_exact(&mut rest).map_err(t)?;
                let err = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
                let got = u64::from_be_bytes(rest[4..12].try_into().unwrap_or_default());
                if got != handle {
                    return Err(Failure::Transport);
                }
                if err != 0 {
                    return Err(Failure::Server(server_errno(err)));
                }
                return match payload {
                    Payload::In(buf) => s.read_exact(buf).map_err(t),
                    // Block status comes in structured replies only.
                    Payload::Status(..) => Err(Failure::Transport),
                    _ => Ok(()),
                };
            }
            STRUCTURED_REPLY_MAGIC => {
                let mut rest = [0u8; 16];
                s.read_exact(&mut rest).map_err(t)?;
                let flags = u16::from_be_bytes([rest[0], rest[1]]);
                let kind = u16::from_be_bytes([rest[2], rest[3]]);
                let got = u64::from_be_bytes(rest[4..12].try_into().unwrap_or_default());
                let len = u32::from_be_bytes([rest[12], rest[13], rest[14], rest[15]]);
                if got != handle {
                    return Err(Failure::Transport);
                }
                chunk(s, kind, len, offset, payload, &mut error)?;
                if flags & CHUNK_DONE != 0 {
                    return match error {
                        Some(e) => Err(Failure::Server(e)),
                        None => Ok(()),
                    };
                }
            }
            // Out of step with the server: nothing later can be trusted.
            _ => return Err(Failure::Transport),
        }
    }
}

/// Reads one structured reply chunk of `len` bytes into the request's
/// payload; an error chunk's errno is kept in `error` (the first one).
fn chunk(
    s: &mut Stream,
    kind: u16,
    len: u32,
    offset: u64,
    payload: &mut Payload<'_>,
    error: &mut Option<io::Error>,
) -> Result<(), Failure> {
    let t = |_: io::Error| Failure::Transport;
    let bad = Failure::Transport;
    match (kind, payload) {
        (CHUNK_NONE, _) if len == 0 => Ok(()),
        (CHUNK_OFFSET_DATA, Payload::In(buf)) if len >= 8 => {
            let mut at = [0u8; 8];
            s.read_exact(&mut at).map_err(t)?;
            let start = u64::from_be_bytes(at).checked_sub(offset).ok_or(bad)?;
            let n = u64::from(len - 8);
            if start
                .checked_add(n)
                .is_none_or(|end| end > buf.len() as u64)
            {
                return Err(Failure::Transport);
            }
            s.read_exact(&mut buf[start as usize..(start + n) as usize])
                .map_err(t)
        }
        (CHUNK_OFFSET_HOLE, Payload::In(buf)) if len == 12 => {
            let mut b = [0u8; 12];
            s.read_exact(&mut b).map_err(t)?;
            let at = u64::from_be_bytes(b[0..8].try_into().unwrap_or_default());
            let n = u64::from(u32::from_be_bytes([b[8], b[9], b[10], b[11]]));
            let start = at.checked_sub(offset).ok_or(Failure::Transport)?;
            if start
                .checked_add(n)
                .is_none_or(|end| end > buf.len() as u64)
            {
                return Err(Failure::Transport);
            }
            buf[start as usize..(start + n) as usize].fill(0);
            Ok(())
        }
        (CHUNK_BLOCK_STATUS, Payload::Status(ctx, first)) if len >= 12 && len % 8 == 4 => {
            let mut id = [0u8; 4];
            s.read_exact(&mut id).map_err(t)?;
            let mut d = [0u8; 8];
            for i in 0..(len - 4) / 8 {
                s.read_exact(&mut d).map_err(t)?;
                if i == 0 && u32::from_be_bytes(id) == *ctx {
                    let n = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
                    let f = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
                    **first = Some((n, f));
                }
            }
            Ok(())
        }
        (k, _) if k & CHUNK_ERROR_BIT != 0 && len >= 6 => {
            let mut body = vec![0u8; len as usize];
            s.read_exact(&mut body).map_err(t)?;
            let e = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
            error.get_or_insert_with(|| server_errno(e));
            Ok(())
        }
        // A chunk this request cannot have: the stream is not to be trusted.
        _ => Err(Failure::Transport),
    }
}

impl Drop for NbdNode {
    /// Says goodbye (NBD_CMD_DISC), as QEMU's client does on close.
    fn drop(&mut self) {
        let mut conn = self.lock();
        conn.handle += 1;
        let handle = conn.handle;
        if let Some(s) = conn.stream.as_mut() {
            let _ = s.write_all(&request_header(CMD_DISC, 0, handle, 0, 0));
        }
    }
}

impl BlockDriver for NbdNode {
    fn driver_name(&self) -> &'static str {
        "nbd"
    }

    fn role(&self) -> Role {
        Role::Protocol
    }

    fn length(&self) -> io::Result<u64> {
        Ok(self.info.size)
    }

    /// Bytes past the export's end read as zeros; an unaligned range is
    /// read through the minimum-block-aligned window around it.
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let size = self.info.size;
        let inside = size.saturating_sub(offset).min(buf.len() as u64) as usize;
        buf[inside..].fill(0);
        let buf = &mut buf[..inside];
        if buf.is_empty() {
            return Ok(());
        }
        let a = self.align();
        let end = offset + buf.len() as u64;
        if offset.is_multiple_of(a) && end.is_multiple_of(a) {
            return self.read_aligned(offset, buf);
        }
        let start = offset / a * a;
        let wend = end.next_multiple_of(a).min(size.next_multiple_of(a));
        let mut window = vec![0u8; (wend - start) as usize];
        self.read_aligned(start, &mut window)?;
        let skip = (offset - start) as usize;
        buf.copy_from_slice(&window[skip..skip + buf.len()]);
        Ok(())
    }

    fn write(&self, offset: u64, buf: &[u8], flags: WriteFlags) -> io::Result<()> {
        self.writev(offset, &[buf], flags, &|_| {})
    }

    /// One request per maximum-size piece; an unaligned write is merged
    /// into the aligned window read from the server first.
    fn writev(
        &self,
        offset: u64,
        bufs: &[&[u8]],
        flags: WriteFlags,
        progress: OnProgress<'_>,
    ) -> io::Result<()> {
        let len: u64 = bufs.iter().map(|b| b.len() as u64).sum();
        let a = self.align();
        if offset.is_multiple_of(a) && len.is_multiple_of(a) {
            return self.write_aligned(offset, bufs, flags, progress);
        }
        let start = offset / a * a;
        let end = (offset + len).next_multiple_of(a);
        let mut window = vec![0u8; (end - start) as usize];
        self.read_aligned(start, &mut window)?;
        let mut at = (offset - start) as usize;
        for b in bufs {
            window[at..at + b.len()].copy_from_slice(b);
            at += b.len();
        }
        self.write_aligned(start, &[&window], flags, &|_| {})?;
        progress(len);
        Ok(())
    }

    fn write_zeroes(&self, offset: u64, len: u64, flags: WriteFlags) -> io::Result<()> {
        let a = self.align();
        let aligned = offset.is_multiple_of(a) && len.is_multiple_of(a);
        if !self.has(TFLAG_SEND_WRITE_ZEROES) || !aligned {
            return super::driver::write_zeroes_by_writing(self, offset, len, flags);
        }
        let mut cmd_flags = 0;
        if !flags.may_unmap {
            cmd_flags |= CMD_FLAG_NO_HOLE;
        }
        let fua = flags.fua && self.has(TFLAG_SEND_FUA);
        if fua {
            cmd_flags |= CMD_FLAG_FUA;
        }
        if flags.no_fallback {
            if !self.has(TFLAG_SEND_FAST_ZERO) {
                return Err(errno(Errno::ENOTSUP));
            }
            cmd_flags |= CMD_FLAG_FAST_ZERO;
        }
        self.range_command(CMD_WRITE_ZEROES, cmd_flags, offset, len)?;
        if flags.fua && !fua {
            self.flush()?;
        }
        Ok(())
    }

    /// Sent as NBD_CMD_TRIM where the server takes it; the data stays
    /// otherwise (a discard is advisory).
    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        if !self.has(TFLAG_SEND_TRIM) {
            return Ok(());
        }
        self.range_command(CMD_TRIM, 0, offset, len)
    }

    fn flush(&self) -> io::Result<()> {
        if !self.has(TFLAG_SEND_FLUSH) {
            return Ok(());
        }
        self.request(CMD_FLUSH, 0, 0, 0, Payload::None)
    }

    /// NBD_CMD_BLOCK_STATUS for `base:allocation` (first extent only), as
    /// QEMU's client asks: a hole that does not read as zeros is not
    /// allocated. Without the context, all of it is allocated.
    fn allocation(&self, offset: u64, len: u64) -> io::Result<(bool, u64)> {
        let Some(ctx) = self.info.allocation_ctx else {
            return Ok((true, len));
        };
        let end = self.info.size.min(offset + len);
        if offset >= end {
            return Ok((true, len));
        }
        let n = (end - offset).min(u64::from(u32::MAX) / 2 + 1);
        let mut first = None;
        let payload = Payload::Status(ctx, &mut first);
        self.request(
            CMD_BLOCK_STATUS,
            CMD_FLAG_REQ_ONE,
            offset,
            n as u32,
            payload,
        )?;
        let Some((got, flags)) = first else {
            return Err(errno(Errno::EIO));
        };
        let got = u64::from(got).min(n);
        if got == 0 {
            return Err(errno(Errno::EIO));
        }
        let allocated = flags & STATE_HOLE == 0 || flags & STATE_ZERO != 0;
        Ok((allocated, got))
    }

    /// An export cannot grow; asking for less changes nothing, as QEMU's
    /// nbd driver answers a non-exact truncate.
    fn truncate(&self, len: u64, _prealloc: Prealloc) -> Result<(), String> {
        if len > self.info.size {
            return Err("Cannot grow NBD nodes".into());
        }
        Ok(())
    }

    fn info(&self) -> NodeInfo {
        NodeInfo {
            // As qemu-io names an nbd root node: `driver=nbd` (and `-f
            // nbd`) find QEMU's nbd+unix driver first, whatever the socket.
            format_names: vec!["nbd".into(), "nbd+unix".into()],
            no_block_info: true,
            ..NodeInfo::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(p: &str, e: &str) -> Result<(Addr, String), String> {
        Ok((Addr::Unix(p.into()), e.into()))
    }

    fn inet(h: &str, p: &str, e: &str) -> Result<(Addr, String), String> {
        let addr = Addr::Inet {
            host: h.into(),
            port: p.into(),
        };
        Ok((addr, e.into()))
    }

    #[test]
    fn file_names_parse_as_qemu_parses_them() {
        assert_eq!(parse_filename("nbd+unix:///ex?socket=/s"), unix("/s", "ex"));
        assert_eq!(parse_filename("nbd+unix://?socket=/s"), unix("/s", ""));
        assert_eq!(parse_filename("nbd://h/ex"), inet("h", "10809", "ex"));
        assert_eq!(
            parse_filename("nbd+tcp://h:99/a%20b"),
            inet("h", "99", "a b")
        );
        assert_eq!(parse_filename("nbd://[::1]:7/"), inet("::1", "7", ""));
        assert_eq!(parse_filename("nbd:unix:/s"), unix("/s", ""));
        assert_eq!(
            parse_filename("nbd:unix:/s:exportname=x:y"),
            unix("/s", "x:y")
        );
        assert_eq!(parse_filename("nbd:h:5:exportname=e"), inet("h", "5", "e"));
        assert_eq!(parse_filename("nbd:[::1]:5"), inet("::1", "5", ""));
        let bad = |n: &str| parse_filename(n).unwrap_err();
        for n in [
            "nbd+unix:///x",
            "nbd://",
            "nbd+unix://h/x?socket=/a",
            "nbd://h/x?socket=/a",
            "nbd+unix:///x?socket=/a&b=1",
        ] {
            assert_eq!(bad(n), "No valid URL specified", "{n}");
        }
        assert_eq!(bad("nbd:"), "NBD server address missing");
        assert_eq!(bad("nbd:localhost"), "error parsing address 'localhost'");
        assert_eq!(bad("nbd+bogus:x"), "Unknown protocol 'nbd+bogus'");
        assert_eq!(bad("nbd+rdma://h/x"), "Unknown protocol 'nbd+rdma'");
    }

    #[test]
    fn options_name_what_is_missing_or_in_conflict() {
        let addr = |text: &str| take_address(&mut OptionMap::parse(text).unwrap());
        assert_eq!(
            addr("server.type=unix,server.path=/s,export=e"),
            unix("/s", "e")
        );
        assert_eq!(
            addr("server.type=inet,server.host=h,server.port=1"),
            inet("h", "1", "")
        );
        assert_eq!(addr("host=h"), inet("h", "10809", ""));
        assert_eq!(addr("path=/s"), unix("/s", ""));
        assert_eq!(addr("filename=nbd:unix:/s"), unix("/s", ""));
        let err = |text: &str| addr(text).unwrap_err();
        assert_eq!(err(""), "NBD server address missing");
        assert_eq!(err("server.type=unix"), "Parameter 'path' is missing");
        assert_eq!(err("server.type=inet"), "Parameter 'host' is missing");
        assert_eq!(
            err("server.type=inet,server.host=h"),
            "Parameter 'port' is missing"
        );
        assert_eq!(
            err("server.type=foo"),
            "Parameter 'type' does not accept value 'foo'"
        );
        assert_eq!(
            err("server.type=unix,server.path=/s,server.port=4"),
            "Parameter 'port' is unexpected"
        );
        assert_eq!(
            err("path=/s,host=h"),
            "path and host may not be used at the same time"
        );
    }

    /// A structured reply chunk as a server sends it.
    fn chunk_bytes(flags: u16, kind: u16, handle: u64, payload: &[u8]) -> Vec<u8> {
        let mut b = STRUCTURED_REPLY_MAGIC.to_be_bytes().to_vec();
        b.extend_from_slice(&flags.to_be_bytes());
        b.extend_from_slice(&kind.to_be_bytes());
        b.extend_from_slice(&handle.to_be_bytes());
        b.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        b.extend_from_slice(payload);
        b
    }

    /// Runs one request against `reply` (what the server answers).
    fn run(reply: Vec<u8>, cmd: u16, payload: &mut Payload<'_>) -> Result<(), Failure> {
        let (a, mut b) = UnixStream::pair().unwrap();
        let server = std::thread::spawn(move || {
            let mut req = [0u8; 28];
            b.read_exact(&mut req).unwrap();
            b.write_all(&reply).unwrap();
        });
        let mut client = Stream::Unix(a);
        let r = exchange(&mut client, cmd, 0, 7, 4096, 8, payload);
        server.join().unwrap();
        r
    }

    #[test]
    fn structured_reads_fill_data_and_holes() {
        let mut data = 4100u64.to_be_bytes().to_vec();
        data.extend_from_slice(b"abcd");
        let mut hole = 4096u64.to_be_bytes().to_vec();
        hole.extend_from_slice(&4u32.to_be_bytes());
        let mut reply = chunk_bytes(0, CHUNK_OFFSET_DATA, 7, &data);
        reply.extend(chunk_bytes(CHUNK_DONE, CHUNK_OFFSET_HOLE, 7, &hole));
        let mut buf = [0xffu8; 8];
        assert!(run(reply, CMD_READ, &mut Payload::In(&mut buf)).is_ok());
        assert_eq!(&buf, b"\0\0\0\0abcd");

        // An error chunk fails the request with its errno.
        let mut err = 1u32.to_be_bytes().to_vec();
        err.extend_from_slice(&0u16.to_be_bytes());
        let reply = chunk_bytes(CHUNK_DONE, CHUNK_ERROR_BIT | 1, 7, &err);
        match run(reply, CMD_READ, &mut Payload::In(&mut buf)) {
            Err(Failure::Server(e)) => assert_eq!(e.raw_os_error(), Some(libc::EPERM)),
            _ => panic!("want EPERM"),
        }

        // Data outside the request, or another handle: out of step.
        let reply = chunk_bytes(CHUNK_DONE, CHUNK_OFFSET_DATA, 7, &data[..4]);
        assert!(matches!(
            run(reply, CMD_READ, &mut Payload::In(&mut buf)),
            Err(Failure::Transport)
        ));
        let mut far = 4200u64.to_be_bytes().to_vec();
        far.extend_from_slice(b"abcd");
        let reply = chunk_bytes(CHUNK_DONE, CHUNK_OFFSET_DATA, 7, &far);
        assert!(matches!(
            run(reply, CMD_READ, &mut Payload::In(&mut buf)),
            Err(Failure::Transport)
        ));
        let reply = chunk_bytes(CHUNK_DONE, CHUNK_NONE, 8, &[]);
        assert!(matches!(
            run(reply, CMD_FLUSH, &mut Payload::None),
            Err(Failure::Transport)
        ));
    }

    #[test]
    fn block_status_takes_the_first_extent_of_its_context() {
        let mut status = 3u32.to_be_bytes().to_vec();
        for (len, flags) in [(4096u32, STATE_HOLE | STATE_ZERO), (512, 0)] {
            status.extend_from_slice(&len.to_be_bytes());
            status.extend_from_slice(&flags.to_be_bytes());
        }
        let reply = chunk_bytes(CHUNK_DONE, CHUNK_BLOCK_STATUS, 7, &status);
        let mut first = None;
        assert!(run(reply, CMD_BLOCK_STATUS, &mut Payload::Status(3, &mut first)).is_ok());
        assert_eq!(first, Some((4096, STATE_HOLE | STATE_ZERO)));
    }

    #[test]
    fn option_errors_carry_the_servers_message() {
        assert_eq!(
            option_error(REP_ERR | 6, b"export 'x' not present"),
            "Requested export not available\nserver reported: export 'x' not present"
        );
        assert_eq!(
            option_error(REP_ERR | 2, b""),
            "Denied by server for option 7 (go)"
        );
    }
}
