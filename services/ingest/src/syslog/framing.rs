//! Splitting a byte stream into syslog messages (RFC 6587): octet counting (`LEN SP MSG`,
//! recognised when a frame starts with a length, a space and `<`) or newline-delimited (LF,
//! with a CR before it dropped). Each frame is told apart on its own, so a stream may mix them.
//! Every frame is bounded: an overlong one is reported once and skipped, never buffered whole.
//!
//! ```text
//!  bytes ──push──▶ buffer ──next_frame──▶ Ok(&[u8]) one message, borrowed from the buffer
//!                                     └─▶ Err(FrameError::TooLong) once per overlong frame
//! ```

/// A frame that could not be delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Longer than the limit; its bytes were discarded.
    #[error("a frame of at least {len} bytes is longer than the limit of {max} bytes")]
    TooLong { len: usize, max: usize },
}

/// Buffers a byte stream and hands out its frames.
#[derive(Debug)]
pub struct Deframer {
    buffer: Vec<u8>,
    /// Start of the first byte not yet handed out.
    start: usize,
    max_frame_bytes: usize,
    /// Bytes still to drop from an overlong octet-counted frame.
    skip: usize,
    /// Dropping an overlong newline-delimited frame up to its LF.
    discarding_line: bool,
}

impl Deframer {
    pub fn new(max_frame_bytes: usize) -> Self {
        Deframer { buffer: Vec::new(), start: 0, max_frame_bytes, skip: 0, discarding_line: false }
    }

    /// Appends received bytes. Memory stays within about `max_frame_bytes` plus one push.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete frame, if one is buffered.
    pub fn next_frame(&mut self) -> Option<Result<&[u8], FrameError>> {
        self.frame(false)
    }

    /// At the end of the stream: the next frame, counting what is left without its LF as one.
    pub fn finish(&mut self) -> Option<Result<&[u8], FrameError>> {
        self.frame(true)
    }

    fn frame(&mut self, at_end: bool) -> Option<Result<&[u8], FrameError>> {
        let max = self.max_frame_bytes;
        loop {
            let pending = &self.buffer[self.start..];
            if self.skip > 0 {
                let dropped = self.skip.min(pending.len());
                self.skip -= dropped;
                self.start += dropped;
                if self.skip > 0 {
                    return None;
                }
                continue;
            }
            if self.discarding_line {
                match memchr::memchr(b'\n', pending) {
                    Some(lf) => {
                        self.start += lf + 1;
                        self.discarding_line = false;
                        continue;
                    }
                    None => {
                        self.start += pending.len();
                        return None;
                    }
                }
            }
            if pending.is_empty() {
                return None;
            }
            if let Some((digits, len)) = octet_count(pending) {
                if len > max {
                    self.start += digits + 1;
                    self.skip = len;
                    return Some(Err(FrameError::TooLong { len, max }));
                }
                let begin = self.start + digits + 1;
                if self.buffer.len() - begin < len {
                    return None;
                }
                self.start = begin + len;
                // A sender that also ends octet-counted frames with LF: drop it.
                if self.buffer.get(self.start) == Some(&b'\n') {
                    self.start += 1;
                }
                return Some(Ok(&self.buffer[begin..begin + len]));
            }
            let begin = self.start;
            let end = match memchr::memchr(b'\n', pending) {
                Some(lf) => {
                    self.start += lf + 1;
                    begin + lf
                }
                None if pending.len() > max => {
                    self.start += pending.len();
                    self.discarding_line = !at_end;
                    return Some(Err(FrameError::TooLong { len: pending.len(), max }));
                }
                None if at_end => {
                    self.start += pending.len();
                    begin + pending.len()
                }
                None => return None,
            };
            if end - begin > max {
                return Some(Err(FrameError::TooLong { len: end - begin, max }));
            }
            let frame = &self.buffer[begin..end];
            return Some(Ok(frame.strip_suffix(b"\r").unwrap_or(frame)));
        }
    }
}

/// `LEN SP <`: the length's digit count and value.
fn octet_count(pending: &[u8]) -> Option<(usize, usize)> {
    let digits = pending.iter().take(10).take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || pending[0] == b'0' || pending.get(digits) != Some(&b' ') || pending.get(digits + 1) != Some(&b'<')
    {
        return None;
    }
    let len = std::str::from_utf8(&pending[..digits]).ok()?.parse().ok()?;
    Some((digits, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(deframer: &mut Deframer, at_end: bool) -> Vec<Result<String, FrameError>> {
        let mut out = Vec::new();
        loop {
            let next = if at_end { deframer.finish() } else { deframer.next_frame() };
            match next {
                Some(frame) => out.push(frame.map(|f| String::from_utf8_lossy(f).into_owned())),
                None => return out,
            }
        }
    }

    #[test]
    fn newline_and_octet_counted_frames_mixed_and_split_across_pushes() {
        let mut deframer = Deframer::new(1024);
        deframer.push(b"a line\r\n11 <14>a b c d11 <1");
        assert_eq!(drain(&mut deframer, false), vec![Ok("a line".into()), Ok("<14>a b c d".into())]);
        deframer.push(b"4>e f g h\nlast");
        assert_eq!(drain(&mut deframer, false), vec![Ok("<14>e f g h".into())]);
        assert_eq!(drain(&mut deframer, true), vec![Ok("last".into())]);
        assert_eq!(drain(&mut deframer, true), vec![]);
    }

    #[test]
    fn overlong_frames_are_reported_once_and_skipped() {
        let mut deframer = Deframer::new(8);
        deframer.push(b"0123456789");
        assert_eq!(drain(&mut deframer, false), vec![Err(FrameError::TooLong { len: 10, max: 8 })]);
        deframer.push(b"abc\nok\n20 <14>0123456789012345ok2\n");
        assert_eq!(
            drain(&mut deframer, false),
            vec![Ok("ok".into()), Err(FrameError::TooLong { len: 20, max: 8 }), Ok("ok2".into())]
        );
        deframer.push(b"123456789012\n");
        assert_eq!(drain(&mut deframer, false), vec![Err(FrameError::TooLong { len: 12, max: 8 })]);
    }
}
