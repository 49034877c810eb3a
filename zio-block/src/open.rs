//! Building a graph from what the user typed: an image name (probed), `-f FMT`,
//! or `--image-opts` with dotted child options. Drivers come from the table
//! (`drivers`); each driver's own `open` takes the options it knows.

use std::fmt;
use std::sync::Arc;

use super::drivers::{self, lookup};
use super::snapshot::Snapshot;
use super::{
    BlockBackend, BlockDriver, OptionMap, Role, blkdebug, file, host_device, nbd, strerror,
};

/// How the graph is opened, common to every node.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenFlags {
    pub read_only: bool,
    /// O_DIRECT (`-n`, `--nocache`).
    pub nocache: bool,
    /// `-U`: take no image lock (read-only inspection of an image in use).
    pub force_share: bool,
}

/// What the shell asks to open.
#[derive(Clone, Debug, Default)]
pub struct OpenRequest {
    /// An image name, or with `image_opts` a whole option string.
    pub target: Option<String>,
    /// `-f FMT`.
    pub format: Option<String>,
    /// `--image-opts`: `target` is `driver=...,...`.
    pub image_opts: bool,
    /// Extra options (`open -o ...`), merged under the image name.
    pub options: Option<String>,
    pub read_only: bool,
    pub nocache: bool,
    /// `-U`.
    pub force_share: bool,
    /// `-s`: the image read-only under a throwaway overlay (snapshot.rs).
    pub snapshot: bool,
}

/// Why an image could not be opened, worded as qemu-io words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenError {
    pub device: Option<String>,
    pub reason: String,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.device {
            Some(d) => write!(f, "can't open device {d}: {}", self.reason),
            None => write!(f, "can't open: {}", self.reason),
        }
    }
}

impl std::error::Error for OpenError {}

fn is_protocol(name: &str) -> bool {
    lookup(name).is_some_and(|d| d.role == Role::Protocol)
}

/// Opens the graph `req` describes and puts a backend on top of it.
pub fn open_image(req: &OpenRequest) -> Result<BlockBackend, OpenError> {
    if req.force_share && !req.read_only {
        return Err(OpenError {
            device: req.target.clone().filter(|_| !req.image_opts),
            reason: "force-share=on can only be used with read-only images".into(),
        });
    }
    let flags = OpenFlags {
        read_only: req.read_only || req.snapshot,
        nocache: req.nocache,
        force_share: req.force_share,
    };
    let json = req
        .target
        .as_deref()
        .filter(|_| !req.image_opts)
        .and_then(|t| t.strip_prefix("json:"));
    // `open -o` / `reopen -o` options, set over those of the name.
    let extra = match &req.options {
        Some(o) => OptionMap::parse(o).map_err(|reason| OpenError {
            device: req.target.clone().filter(|_| !req.image_opts),
            reason,
        })?,
        None => OptionMap::default(),
    };
    let (mut opts, device) = if let Some(text) = json {
        let name = req.target.clone();
        let mut opts = OptionMap::from_json(text).map_err(|reason| OpenError {
            device: name.clone(),
            reason,
        })?;
        opts.merge(extra);
        if let Some(fmt) = &req.format
            && !opts.contains("driver")
        {
            opts.set("driver", fmt.clone());
        }
        (opts, name)
    } else if req.image_opts {
        let text = req.target.clone().unwrap_or_default();
        let mut opts = OptionMap::parse(&text).map_err(|reason| OpenError {
            device: None,
            reason,
        })?;
        opts.merge(extra);
        (opts, None)
    } else {
        let name = req.target.clone().unwrap_or_default();
        let mut opts = extra;
        if let Some(fmt) = &req.format {
            opts.set("driver", fmt.clone());
        }
        if !name.is_empty() {
            match opts.take("driver") {
                Some(d) if is_protocol(&d) => {
                    opts.set("driver", d);
                    opts.set("filename", name.clone());
                }
                Some(d) => {
                    opts.set("driver", d);
                    opts.set("file.filename", name.clone());
                }
                None => opts.set("filename", name.clone()),
            }
        }
        (opts, Some(name))
    };
    let name = device
        .clone()
        .unwrap_or_else(|| req.target.clone().unwrap_or_default());
    let mut root = open_node(&mut opts, &flags).map_err(|reason| OpenError {
        device: device.clone(),
        reason,
    })?;
    if req.snapshot {
        let overlay = Snapshot::over(root).map_err(|e| OpenError {
            device,
            reason: strerror(&e),
        })?;
        root = Arc::new(overlay);
    }
    Ok(BlockBackend::new(root, req.read_only, name))
}

/// Opens one node from its options, children first. Without `driver=`, a
/// `filename` is probed: its protocol from the file type, its format from
/// its content.
pub fn open_node(opts: &mut OptionMap, flags: &OpenFlags) -> Result<Arc<dyn BlockDriver>, String> {
    let driver = match opts.take("driver") {
        Some(d) => d,
        None if opts.contains("filename") => {
            let proto = open_protocol(opts, flags)?;
            let node = probe_format(proto, opts, flags)?;
            opts.finish("format", node.driver_name())?;
            return Ok(node);
        }
        None => return Err("A block device must be specified for \"file\"".into()),
    };
    let Some(entry) = lookup(&driver) else {
        return Err(format!("Unknown driver '{driver}'"));
    };
    let node = (entry.open)(opts, flags)?;
    let kind = match entry.role {
        Role::Protocol => "protocol",
        Role::Format => "format",
        Role::Filter => "filter",
    };
    opts.finish(kind, &driver)?;
    Ok(node)
}

/// Deepest chain of children a graph may have: far more than any real
/// graph (format, a few filters, protocol), and bounded so a deep one is
/// refused rather than recursed into.
pub const MAX_NESTING: usize = 64;

/// Opens the child `name` of a format or filter node (`file.driver=...`).
pub(crate) fn open_child(
    opts: &mut OptionMap,
    name: &str,
    flags: &OpenFlags,
) -> Result<Arc<dyn BlockDriver>, String> {
    let mut child = opts.take_child(name);
    if child.depth() > MAX_NESTING {
        return Err(format!(
            "Child options are nested more than {MAX_NESTING} levels deep"
        ));
    }
    if !child.contains("driver") {
        if !child.contains("filename") {
            return Err(format!("A block device must be specified for \"{name}\""));
        }
        let node = open_protocol(&mut child, flags)?;
        child.finish("protocol", node.driver_name())?;
        return Ok(node);
    }
    open_node(&mut child, flags)
}

/// Picks `nbd` for QEMU's NBD names, `host_device` for block and
/// character devices (as QEMU probes) and `file` for everything else.
pub(crate) fn open_protocol(
    opts: &mut OptionMap,
    flags: &OpenFlags,
) -> Result<Arc<dyn BlockDriver>, String> {
    use std::os::unix::fs::FileTypeExt;
    let filename = opts.take("filename").unwrap_or_default();
    // `blkdebug:[CONFIG]:FILE`, as QEMU's blkdebug takes its filename.
    if let Some(rest) = filename.strip_prefix("blkdebug:") {
        let Some((config, image)) = rest.split_once(':') else {
            return Err("blkdebug requires both config file and image path".into());
        };
        if !config.is_empty() {
            return Err(format!(
                "blkdebug config files are not supported by zio ('{config}'): use inject.N.* options"
            ));
        }
        opts.set("x-image", image.to_string());
        let node = blkdebug::open(opts, flags)?;
        return Ok(node);
    }
    // QEMU's NBD names: `nbd:...`, `nbd://...`, `nbd+unix://...`.
    let proto = filename.split_once(':').map(|(p, _)| p);
    if proto.is_some_and(|p| p == "nbd" || (p.starts_with("nbd+") && !p.contains('/'))) {
        opts.set("filename", filename);
        return nbd::open(opts, flags);
    }
    let is_device = std::fs::metadata(&filename)
        .map(|m| m.file_type().is_block_device() || m.file_type().is_char_device())
        .unwrap_or(false);
    opts.set("filename", filename);
    if is_device {
        host_device::open(opts, flags)
    } else {
        file::open(opts, flags)
    }
}

/// Chooses the format for a probed image: the first format in the driver
/// table whose probe claims its first bytes, else raw.
fn probe_format(
    proto: Arc<dyn BlockDriver>,
    opts: &mut OptionMap,
    flags: &OpenFlags,
) -> Result<Arc<dyn BlockDriver>, String> {
    let mut first = [0u8; PROBE_BYTES];
    let got = (proto.length().unwrap_or(0) as usize).min(PROBE_BYTES);
    let claimed = match proto.read(0, &mut first[..got]) {
        Ok(()) => drivers::probe(&first[..got]),
        Err(_) => None,
    };
    let over = claimed
        .or_else(|| lookup("raw"))
        .and_then(|d| d.over)
        .expect("the raw driver opens over any child");
    over(proto, opts, flags)
}

/// How much of an image the format probes see, as QEMU's BLOCK_PROBE_BUF_SIZE.
const PROBE_BYTES: usize = 2048;
