//! What a realdev test needs from the VM, read from its header lines:
//! `# nullb: KEY=VALUE...` (null_blk module parameters) or
//! `# nullb-configfs: KEY=VALUE...` (the same names and units, but the
//! device is made through null_blk's configfs, which gives it the
//! `zone_readonly` / `zone_offline` attributes), and optionally
//! `# nvme: zns [zone_size=16M] [zone_capacity=12M] [size=1G] [max_open=N]
//! [max_active=N]`, and
//! optionally `# scsi_debug: KEY=VALUE...` (scsi_debug module parameters:
//! a host-managed SCSI ZBC disk, e.g. `zbc=managed zone_size_mb=4`), and
//! `# kernels: 6.1 6.12` (the kernels it runs on; default the pinned 6.1).
//! A test runs once per kernel; runs with equal needs (kernel included)
//! share one boot.

use std::fmt;

/// Parameters the VM always gives null_blk; a test's own come after them
/// (and so win, as the last value of a module parameter does).
pub const NULLB_BASE: [&str; 2] = ["nr_devices=1", "memory_backed=1"];

/// The kernel a test runs on unless its `# kernels:` line says otherwise:
/// Debian's pinned 6.1, the one the emulation's defaults follow.
pub const DEFAULT_KERNEL: &str = "6.1";
/// The kernel series the VM tier boots (vm/setup.sh installs each).
pub const KERNELS: &[&str] = &["6.1", "6.12"];

/// The kernels of a test's `# kernels:` line, in its order, or
/// [`DEFAULT_KERNEL`] without one; an error names the bad word.
pub fn kernels(script: &str) -> Result<Vec<String>, String> {
    let Some(line) = script.lines().find_map(|l| l.strip_prefix("# kernels:")) else {
        return Ok(vec![DEFAULT_KERNEL.to_string()]);
    };
    let mut out: Vec<String> = Vec::new();
    for word in line.split_whitespace() {
        if !KERNELS.contains(&word) {
            return Err(format!(
                "unknown `# kernels:` word '{word}' (known: {})",
                KERNELS.join(" ")
            ));
        }
        if !out.iter().any(|k| k == word) {
            out.push(word.to_string());
        }
    }
    if out.is_empty() {
        return Err("empty `# kernels:` line".into());
    }
    Ok(out)
}

/// The devices one boot provides.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Needs {
    /// The kernel series it boots (one of [`KERNELS`]).
    pub kernel: String,
    /// The words of the `# nullb:` (or `# nullb-configfs:`) line, without
    /// [`NULLB_BASE`].
    pub nullb: Vec<String>,
    /// The line was `# nullb-configfs:`: /dev/nullb0 is made through
    /// configfs (null_blk loaded with nr_devices=0), not by module
    /// parameters.
    pub configfs: bool,
    /// The NVMe ZNS namespace, if the test has a `# nvme:` line.
    pub nvme: Option<Zns>,
    /// scsi_debug's module parameters, if the test has a `# scsi_debug:`
    /// line.
    pub scsi: Option<Vec<String>>,
}

/// Geometry of the emulated NVMe ZNS namespace (QEMU's `nvme-ns` options).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Zns {
    /// `zoned.zone_size`, as written (e.g. `16M`).
    pub zone_size: String,
    /// `zoned.zone_capacity`, as written.
    pub zone_capacity: String,
    /// The namespace (backing file) size in bytes.
    pub size: u64,
    /// `zoned.max_open` (0: no limit).
    pub max_open: u32,
    /// `zoned.max_active` (0: no limit).
    pub max_active: u32,
}

impl Default for Zns {
    fn default() -> Zns {
        Zns {
            zone_size: "16M".into(),
            zone_capacity: "12M".into(),
            size: 1 << 30,
            max_open: 0,
            max_active: 0,
        }
    }
}

impl Needs {
    /// Reads the header lines of a test script, for a run on `kernel`; an
    /// error names the bad word.
    pub fn of(script: &str, kernel: &str) -> Result<Needs, String> {
        let header = |tag: &str| -> Option<Vec<String>> {
            script
                .lines()
                .find_map(|l| l.strip_prefix(tag))
                .map(|rest| rest.split_whitespace().map(str::to_string).collect())
        };
        let (nullb, configfs) = match (header("# nullb:"), header("# nullb-configfs:")) {
            (Some(_), Some(_)) => {
                return Err("both `# nullb:` and `# nullb-configfs:` lines (want one)".into());
            }
            (None, Some(words)) => (words, true),
            (words, None) => (words.unwrap_or_default(), false),
        };
        let line = if configfs {
            "# nullb-configfs:"
        } else {
            "# nullb:"
        };
        check_params(line, &nullb)?;
        let nvme = match header("# nvme:") {
            None => None,
            Some(words) => Some(parse_zns(&words)?),
        };
        let scsi = header("# scsi_debug:");
        if let Some(words) = &scsi {
            check_params("# scsi_debug:", words)?;
        }
        if !KERNELS.contains(&kernel) {
            return Err(format!("unknown kernel '{kernel}'"));
        }
        Ok(Needs {
            kernel: kernel.to_string(),
            nullb,
            configfs,
            nvme,
            scsi,
        })
    }

    /// The null_blk parameters of this boot: module parameters, or with
    /// [`Needs::configfs`] the configfs attributes (`/init` turns `gb=N`
    /// into `size=N*1024` and writes the rest as they are).
    pub fn nullb_params(&self) -> Vec<String> {
        NULLB_BASE
            .iter()
            .map(|s| s.to_string())
            .chain(self.nullb.iter().cloned())
            .collect()
    }

    /// QEMU arguments for the devices beyond the defaults; `backing` is the
    /// ZNS namespace's raw file, relative to QEMU's working directory.
    pub fn qemu_args(&self, backing: &str) -> Vec<String> {
        let Some(zns) = &self.nvme else {
            return Vec::new();
        };
        [
            "-drive".to_string(),
            format!("file={backing},id=zns0,format=raw,if=none"),
            "-device".to_string(),
            "nvme,id=nvme0,serial=zio0,zoned.zasl=5".to_string(),
            "-device".to_string(),
            format!(
                "nvme-ns,drive=zns0,bus=nvme0,nsid=1,zoned=true,zoned.zone_size={},zoned.zone_capacity={},zoned.max_open={},zoned.max_active={}",
                zns.zone_size, zns.zone_capacity, zns.max_open, zns.max_active
            ),
        ]
        .into()
    }
}

impl fmt::Display for Needs {
    /// `Linux 6.1: null_blk zoned=1 ...`, `+ nvme zns zone_size=..` and
    /// `+ scsi_debug ...`, for progress lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Linux {}: null_blk", self.kernel)?;
        if self.configfs {
            write!(f, " (configfs)")?;
        }
        for w in &self.nullb {
            write!(f, " {w}")?;
        }
        if let Some(z) = &self.nvme {
            write!(
                f,
                " + nvme zns zone_size={} zone_capacity={} size={} max_open={} max_active={}",
                z.zone_size, z.zone_capacity, z.size, z.max_open, z.max_active
            )?;
        }
        if let Some(words) = &self.scsi {
            write!(f, " + scsi_debug {}", words.join(" "))?;
        }
        Ok(())
    }
}

/// Module parameter words: `PARAM=VALUE`, safe inside a shell word list.
fn check_params(line: &str, words: &[String]) -> Result<(), String> {
    for word in words {
        let ok = word.split_once('=').is_some_and(|(k, v)| {
            !k.is_empty()
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !v.is_empty()
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".,_-".contains(c))
        });
        if !ok {
            return Err(format!("bad `{line}` word '{word}' (want PARAM=VALUE)"));
        }
    }
    Ok(())
}

fn parse_zns(words: &[String]) -> Result<Zns, String> {
    if words.first().map(String::as_str) != Some("zns") {
        return Err("`# nvme:` line must start with `zns`".into());
    }
    let mut zns = Zns::default();
    for word in &words[1..] {
        let (key, value) = word.split_once('=').unwrap_or((word, ""));
        if let "max_open" | "max_active" = key {
            let n = value
                .parse::<u32>()
                .map_err(|_| format!("bad `# nvme:` word '{word}' (want {key}=NUMBER)"))?;
            if key == "max_open" {
                zns.max_open = n;
            } else {
                zns.max_active = n;
            }
            continue;
        }
        let bytes = parse_size(value)
            .ok_or_else(|| format!("bad `# nvme:` word '{word}' (want KEY=SIZE)"))?;
        match key {
            "zone_size" => zns.zone_size = value.to_string(),
            "zone_capacity" => zns.zone_capacity = value.to_string(),
            "size" => zns.size = bytes,
            _ => return Err(format!("unknown `# nvme:` word '{word}'")),
        }
    }
    Ok(zns)
}

/// `NUMBER[K|M|G|T]` (powers of 1024) in bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let (num, shift) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 10),
        b'M' | b'm' => (&s[..s.len() - 1], 20),
        b'G' | b'g' => (&s[..s.len() - 1], 30),
        b'T' | b't' => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    num.parse::<u64>().ok()?.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nullb_and_nvme_lines() {
        let n = Needs::of(
            "#!/bin/bash\n# group: realdev\n# nullb: zoned=1 zone_size=64 gb=1\n",
            DEFAULT_KERNEL,
        )
        .unwrap();
        assert_eq!(n.nullb, ["zoned=1", "zone_size=64", "gb=1"]);
        assert_eq!(n.nvme, None);
        assert!(!n.configfs);
        assert_eq!(
            n.nullb_params(),
            [
                "nr_devices=1",
                "memory_backed=1",
                "zoned=1",
                "zone_size=64",
                "gb=1"
            ]
        );
        assert!(n.qemu_args("zns.raw").is_empty());

        let n = Needs::of(
            "# nullb: zoned=1\n# nvme: zns zone_capacity=8M\n",
            DEFAULT_KERNEL,
        )
        .unwrap();
        let z = n.nvme.clone().unwrap();
        assert_eq!(
            (z.zone_size.as_str(), z.zone_capacity.as_str()),
            ("16M", "8M")
        );
        assert_eq!(z.size, 1 << 30);
        let args = n.qemu_args("zns.raw").join(" ");
        assert!(args.contains("file=zns.raw,id=zns0"), "{args}");
        assert!(
            args.ends_with(
                "zoned.zone_size=16M,zoned.zone_capacity=8M,zoned.max_open=0,zoned.max_active=0"
            ),
            "{args}"
        );
        let n = Needs::of("# nvme: zns max_open=2 max_active=3\n", DEFAULT_KERNEL).unwrap();
        let z = n.nvme.unwrap();
        assert_eq!((z.max_open, z.max_active), (2, 3));
        assert!(Needs::of("# nvme: zns max_open=x\n", DEFAULT_KERNEL).is_err());
    }

    #[test]
    fn configfs_line() {
        let n = Needs::of(
            "# nullb-configfs: zoned=1 zone_size=4 gb=1\n",
            DEFAULT_KERNEL,
        )
        .unwrap();
        assert!(n.configfs);
        assert_eq!(n.nullb, ["zoned=1", "zone_size=4", "gb=1"]);
        assert_eq!(
            n.to_string(),
            "Linux 6.1: null_blk (configfs) zoned=1 zone_size=4 gb=1"
        );
        // Not the same boot as the module-parameter device.
        assert_ne!(
            n,
            Needs::of("# nullb: zoned=1 zone_size=4 gb=1\n", DEFAULT_KERNEL).unwrap()
        );
        assert!(
            Needs::of(
                "# nullb: zoned=1\n# nullb-configfs: zoned=1\n",
                DEFAULT_KERNEL
            )
            .is_err()
        );
        let e = Needs::of("# nullb-configfs: zoned\n", DEFAULT_KERNEL).unwrap_err();
        assert!(e.contains("`# nullb-configfs:`"), "{e}");
    }

    #[test]
    fn same_lines_same_needs() {
        let a = Needs::of("# nullb: zoned=1  gb=1\n", DEFAULT_KERNEL).unwrap();
        let b = Needs::of("# nullb:zoned=1 gb=1\n", DEFAULT_KERNEL).unwrap();
        assert_eq!(a, b);
        assert_ne!(
            a,
            Needs::of("# nullb: gb=1 zoned=1\n", DEFAULT_KERNEL).unwrap()
        );
        assert_eq!(
            Needs::of("echo\n", DEFAULT_KERNEL).unwrap().nullb,
            Vec::<String>::new()
        );
    }

    #[test]
    fn bad_words_are_refused() {
        assert!(Needs::of("# nullb: zoned=1;reboot\n", DEFAULT_KERNEL).is_err());
        assert!(Needs::of("# nullb: zoned\n", DEFAULT_KERNEL).is_err());
        assert!(Needs::of("# nvme: conventional\n", DEFAULT_KERNEL).is_err());
        assert!(Needs::of("# nvme: zns zone_size=big\n", DEFAULT_KERNEL).is_err());
        assert!(Needs::of("# scsi_debug: zbc\n", DEFAULT_KERNEL).is_err());
        assert!(Needs::of("echo\n", "5.4").is_err());
        assert_eq!(parse_size("12M"), Some(12 << 20));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn kernels_and_scsi_lines() {
        assert_eq!(kernels("echo\n").unwrap(), [DEFAULT_KERNEL]);
        assert_eq!(
            kernels("# kernels: 6.12 6.1 6.12\n").unwrap(),
            ["6.12", "6.1"]
        );
        assert!(kernels("# kernels: 6.2\n").unwrap_err().contains("'6.2'"));
        assert!(kernels("# kernels:\n").is_err());
        let n = Needs::of("# scsi_debug: zbc=managed zone_size_mb=4\n", "6.12").unwrap();
        assert_eq!(n.kernel, "6.12");
        assert_eq!(
            n.scsi.as_deref().unwrap(),
            ["zbc=managed", "zone_size_mb=4"]
        );
        assert_ne!(
            n,
            Needs::of("# scsi_debug: zbc=managed zone_size_mb=4\n", "6.1").unwrap()
        );
    }
}
