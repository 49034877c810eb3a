//! A minimal writer of the `newc` cpio format the kernel unpacks as an
//! initramfs: enough for the few files each boot appends to the base image.

/// One archive member: a directory (`data` is `None`) or a regular file.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// Path inside the archive, without a leading `/` (e.g. `etc/zio-vm`).
    pub path: &'a str,
    /// File contents; `None` makes a directory.
    pub data: Option<&'a [u8]>,
}

/// The archive of `entries` (in order) followed by the trailer, owned by
/// root, directories 0755 and files 0644. Its length is a multiple of 4.
pub fn newc(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let (mode, nlink, data) = match e.data {
            None => (0o040_755, 2, &[][..]),
            Some(d) => (0o100_644, 1, d),
        };
        // Inode numbers only need to be distinct within the archive.
        push_member(&mut out, e.path, i as u32 + 1, mode, nlink, data);
    }
    push_member(&mut out, "TRAILER!!!", 0, 0, 1, &[]);
    out
}

fn push_member(out: &mut Vec<u8>, name: &str, ino: u32, mode: u32, nlink: u32, data: &[u8]) {
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime
        data.len() as u32,
        0, // devmajor
        0, // devminor
        0, // rdevmajor
        0, // rdevminor
        name.len() as u32 + 1,
        0, // check
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

/// Zero bytes up to the next multiple of 4 (the kernel skips zero padding
/// between concatenated archives, but only finds a header on a 4-byte
/// boundary).
pub fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_of_a_file_and_the_trailer() {
        let a = newc(&[Entry {
            path: "etc/x",
            data: Some(b"hi\n"),
        }]);
        assert_eq!(a.len() % 4, 0);
        assert!(a.starts_with(b"070701"));
        // header 110 bytes, name "etc/x\0" (6) padded to 116, data 3 -> 120
        assert_eq!(&a[110..116], b"etc/x\0");
        assert_eq!(&a[116..119], b"hi\n");
        assert_eq!(&a[120..126], b"070701");
        let header = std::str::from_utf8(&a[6..110]).unwrap();
        assert_eq!(&header[8..16], "000081A4"); // mode 0100644
        assert_eq!(&header[48..56], "00000003"); // file size
        assert_eq!(&header[88..96], "00000006"); // name size with NUL
        assert!(a[120..].windows(10).any(|w| w == b"TRAILER!!!"));
    }

    #[test]
    fn directories_have_dir_mode() {
        let a = newc(&[Entry {
            path: "etc",
            data: None,
        }]);
        let header = std::str::from_utf8(&a[6..110]).unwrap();
        assert_eq!(&header[8..16], "000041ED");
    }
}
