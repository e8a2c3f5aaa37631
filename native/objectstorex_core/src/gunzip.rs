//! Inflates a gzip stream as its bytes arrive: any number of members one after another (what
//! `cat a.gz b.gz` makes, and what `gzip -d` reads), each checked against its trailer's CRC-32
//! and length. Output comes in pieces no larger than the caller asks for, so a small, highly
//! compressed input never becomes one large buffer: memory is the compressed bytes not yet
//! consumed, the inflater's 32 KiB window, and one piece.

use bytes::{Buf, Bytes, BytesMut};
use flate2::{Decompress, FlushDecompress, Status};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct GzipError(String);

fn invalid(what: impl Into<String>) -> GzipError {
    GzipError(what.into())
}

enum State {
    /// Waiting for (the rest of) a member's header.
    Header,
    /// Inflating a member's deflate data.
    Body,
    /// Waiting for the member's 8-byte trailer.
    Trailer,
}

pub struct Gunzip {
    input: BytesMut,
    state: State,
    inflater: Decompress,
    crc: crc32fast::Hasher,
    /// Bytes of the current member's output, modulo 2^32 as the trailer has it.
    size: u32,
    members: u64,
}

impl Default for Gunzip {
    fn default() -> Self {
        Self::new()
    }
}

const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;

impl Gunzip {
    pub fn new() -> Self {
        Gunzip {
            input: BytesMut::new(),
            state: State::Header,
            inflater: Decompress::new(false),
            crc: crc32fast::Hasher::new(),
            size: 0,
            members: 0,
        }
    }

    /// Adds compressed bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
    }

    /// The next piece of output, at most `max` bytes; `Ok(None)` when more input is needed.
    pub fn pull(&mut self, max: usize) -> Result<Option<Bytes>, GzipError> {
        loop {
            match self.state {
                State::Header => {
                    let Some(len) = header_len(&self.input)? else {
                        return Ok(None);
                    };
                    self.input.advance(len);
                    self.inflater.reset(false);
                    self.crc = crc32fast::Hasher::new();
                    self.size = 0;
                    self.state = State::Body;
                }
                State::Body => {
                    if self.input.is_empty() {
                        return Ok(None);
                    }
                    let mut out = Vec::with_capacity(max.max(1));
                    let (before_in, before_out) =
                        (self.inflater.total_in(), self.inflater.total_out());
                    let status = self
                        .inflater
                        .decompress_vec(&self.input, &mut out, FlushDecompress::None)
                        .map_err(|e| invalid(format!("corrupt deflate data: {e}")))?;
                    let consumed = (self.inflater.total_in() - before_in) as usize;
                    let produced = (self.inflater.total_out() - before_out) as usize;
                    self.input.advance(consumed);
                    self.crc.update(&out);
                    self.size = self.size.wrapping_add(produced as u32);
                    if status == Status::StreamEnd {
                        self.state = State::Trailer;
                    }
                    if produced > 0 {
                        return Ok(Some(out.into()));
                    }
                    if consumed == 0 && status != Status::StreamEnd {
                        // Everything buffered is a partial block: more input is needed.
                        return Ok(None);
                    }
                }
                State::Trailer => {
                    if self.input.len() < 8 {
                        return Ok(None);
                    }
                    let crc = self.input.get_u32_le();
                    let size = self.input.get_u32_le();
                    let want = std::mem::take(&mut self.crc).finalize();
                    if crc != want || size != self.size {
                        return Err(invalid(format!(
                            "gzip member {} fails its check: CRC-32 {crc:08x} and length {size} \
                             in the trailer, {want:08x} and {} inflated",
                            self.members + 1,
                            self.size
                        )));
                    }
                    self.members += 1;
                    self.state = State::Header;
                }
            }
        }
    }

    /// At the end of the input: the stream must have ended with a whole member.
    pub fn finish(&self) -> Result<(), GzipError> {
        match self.state {
            State::Header if self.input.is_empty() && self.members > 0 => Ok(()),
            State::Header if self.members == 0 => Err(invalid("the input is not a gzip stream")),
            _ => Err(invalid(
                "the gzip stream is truncated: its last member has no end",
            )),
        }
    }
}

/// The length of the member header at the start of `input`; `None` if it is not all there.
fn header_len(input: &[u8]) -> Result<Option<usize>, GzipError> {
    let need = |n: usize| input.len() >= n;
    if input.len() >= 2 && (input[0] != 0x1f || input[1] != 0x8b) {
        return Err(invalid("the input is not a gzip stream (no gzip header)"));
    }
    if !need(10) {
        return Ok(None);
    }
    if input[2] != 8 {
        return Err(invalid(
            "gzip member uses a compression method other than deflate",
        ));
    }
    let flags = input[3];
    let mut pos = 10;
    if flags & FEXTRA != 0 {
        if !need(pos + 2) {
            return Ok(None);
        }
        pos += 2 + u16::from_le_bytes([input[pos], input[pos + 1]]) as usize;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            match input
                .get(pos..)
                .and_then(|rest| rest.iter().position(|&b| b == 0))
            {
                Some(zero) => pos += zero + 1,
                None => return Ok(None),
            }
        }
    }
    if flags & FHCRC != 0 {
        pos += 2;
    }
    Ok(need(pos).then_some(pos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Feeds `input` in `step`-byte pieces, pulling pieces of at most `max`.
    fn inflate(input: &[u8], step: usize, max: usize) -> Result<Vec<u8>, GzipError> {
        let mut g = Gunzip::new();
        let mut out = Vec::new();
        for piece in input.chunks(step.max(1)) {
            g.push(piece);
            while let Some(bytes) = g.pull(max)? {
                assert!(bytes.len() <= max);
                out.extend_from_slice(&bytes);
            }
        }
        g.finish()?;
        Ok(out)
    }

    #[test]
    fn every_member_of_a_concatenation() {
        let mut both = gzip(b"first member\n");
        both.extend(gzip(b"second member\n"));
        both.extend(gzip(b""));
        for step in [1, 3, 7, 64, both.len()] {
            assert_eq!(
                inflate(&both, step, 5).unwrap(),
                b"first member\nsecond member\n"
            );
        }
    }

    #[test]
    fn output_is_bounded_whatever_the_ratio() {
        let ones = vec![b'\n'; 4 << 20];
        let gz = gzip(&ones);
        assert!(gz.len() < 16 << 10);
        assert_eq!(inflate(&gz, gz.len(), 64 << 10).unwrap(), ones);
    }

    #[test]
    fn truncation_corruption_and_garbage_are_errors() {
        let gz = gzip(b"some text that compresses\n");
        assert!(inflate(&gz[..gz.len() - 4], 4, 16).is_err());
        assert!(inflate(&gz[..5], 4, 16).is_err());
        let mut bad_crc = gz.clone();
        let at = bad_crc.len() - 8;
        bad_crc[at] ^= 0xff;
        assert!(inflate(&bad_crc, 4, 16).is_err());
        let mut garbage = gz.clone();
        garbage.extend_from_slice(b"not gzip");
        assert!(inflate(&garbage, 4, 16).is_err());
        assert!(inflate(b"plain text\n", 4, 16).is_err());
        assert!(inflate(b"", 4, 16).is_err());
    }

    #[test]
    fn header_fields_are_skipped() {
        let mut e = flate2::GzBuilder::new()
            .filename("a.txt")
            .comment("a comment")
            .extra(vec![1, 2, 3])
            .write(Vec::new(), Compression::fast());
        e.write_all(b"payload").unwrap();
        let gz = e.finish().unwrap();
        assert_eq!(inflate(&gz, 2, 3).unwrap(), b"payload");
    }
}
