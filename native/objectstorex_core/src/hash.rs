//! Digests computed while bytes flow, with no extra copy of the data.

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// A running digest of one of the supported algorithms.
pub enum Hasher {
    Sha256(Sha256),
    Sha1(Sha1),
    Md5(Md5),
    Crc32c(u32),
}

impl Hasher {
    /// `name` is one of `sha256`, `sha1`, `md5`, `crc32c`.
    pub fn new(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(Hasher::Sha256(Sha256::new())),
            "sha1" => Some(Hasher::Sha1(Sha1::new())),
            "md5" => Some(Hasher::Md5(Md5::new())),
            "crc32c" => Some(Hasher::Crc32c(0)),
            _ => None,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Md5(h) => h.update(data),
            Hasher::Crc32c(crc) => *crc = crc32c::crc32c_append(*crc, data),
        }
    }

    /// The digest as lowercase hex (crc32c as 8 hex digits, big-endian).
    pub fn finish_hex(self) -> String {
        let bytes: Vec<u8> = match self {
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Md5(h) => h.finalize().to_vec(),
            Hasher::Crc32c(crc) => crc.to_be_bytes().to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(name: &str, parts: &[&[u8]]) -> String {
        let mut h = Hasher::new(name).unwrap();
        parts.iter().for_each(|p| h.update(p));
        h.finish_hex()
    }

    #[test]
    fn known_vectors() {
        assert_eq!(
            digest("sha256", &[b"ab", b"c"]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            digest("sha1", &[b"abc"]),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            digest("md5", &[b"a", b"bc"]),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        // RFC 3720 test vector: 32 bytes of zeros.
        assert_eq!(digest("crc32c", &[&[0u8; 32]]), "8a9136aa");
    }

    #[test]
    fn unknown_algorithm() {
        assert!(Hasher::new("sha512").is_none());
    }
}
