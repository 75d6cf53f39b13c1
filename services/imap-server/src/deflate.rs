//! COMPRESS=DEFLATE (RFC 4978): the connection's stream, which becomes two raw DEFLATE streams
//! (RFC 1951, no zlib header) once the client asks for it.
//!
//! The layer sits on whatever the connection runs on, so over TLS the compression is inside the
//! encryption as RFC 4978 §4 requires.
//!
//! Memory per compressed connection, measured with the zlib-rs backend (flate2 1.1): the
//! inflater takes 46 KiB (47 552 octets, most of it the 32 KiB window, allocated up front) for
//! as long as the connection lives; it cannot be smaller, because RFC 4978 lets the client pick
//! any window up to 32 KiB and every later block may refer that far back. The deflater takes
//! 372 KiB (381 056 octets; flate2 fixes zlib's memory level at 8, so the hash tables dominate
//! and a smaller window saves little: 260 KiB at 4 KiB), so it exists only while a response
//! burst is being written: every flush ends the burst with a sync flush (RFC 4978 §3: responses
//! must not sit in the compressor, IDLE pushes included) and drops the deflater. A new deflater
//! continues the same stream with fresh blocks that never refer back, which any inflater
//! accepts. So an idle compressed connection costs about 46 KiB more than an uncompressed one
//! (above the 12 KiB per idle connection the product targets without compression), and each
//! burst pays for setting up a deflater and does not compress against earlier bursts' text.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// RFC 1951 allows windows up to 32 KiB; the client's choice is unknown, so the inflater
/// accepts the largest.
const INFLATE_WINDOW_BITS: u8 = 15;
/// Compressed octets read from the socket at a time.
const RAW_READ: usize = 4 * 1024;
/// Compressed output is written to the socket before more input is taken once this much is
/// pending, so a large response never holds more than about this much compressed output.
const OUTPUT_HIGH_WATER: usize = 16 * 1024;

/// The connection's stream, plain until [`MaybeDeflate::start`] turns compression on.
pub(crate) struct MaybeDeflate<S> {
    inner: S,
    deflate: Option<Box<DeflateState>>,
}

struct DeflateState {
    inflater: Decompress,
    /// Compressed octets read but not inflated yet (the caller's buffer was full); empty, and
    /// holding no allocation, most of the time.
    input: Vec<u8>,
    /// The last inflate filled the caller's buffer, so it may hold more output.
    inflate_more: bool,
    /// The client ended its DEFLATE stream (a final block): nothing more can arrive.
    ended: bool,
    /// Present only while a response burst is being written (see the module comment).
    deflater: Option<Compress>,
    /// Compressed octets not yet written to the socket, from `written` on.
    output: Vec<u8>,
    written: usize,
}

impl<S> MaybeDeflate<S> {
    pub(crate) fn new(inner: S) -> MaybeDeflate<S> {
        MaybeDeflate {
            inner,
            deflate: None,
        }
    }

    /// Turns compression on in both directions, starting with the next octet either way
    /// (RFC 4978 §3: right after the CRLF of the tagged OK).
    pub(crate) fn start(&mut self) {
        self.deflate = Some(Box::new(DeflateState {
            inflater: Decompress::new_with_window_bits(false, INFLATE_WINDOW_BITS),
            input: Vec::new(),
            inflate_more: false,
            ended: false,
            deflater: None,
            output: Vec::new(),
            written: 0,
        }));
    }

    /// The underlying stream (for the TLS handshake after STARTTLS, which is refused while
    /// compression is on).
    pub(crate) fn into_inner(self) -> S {
        self.inner
    }
}

fn corrupt(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("invalid DEFLATE data from the client: {e}"),
    )
}

impl DeflateState {
    /// Inflates `input` into `buf`; returns how many input octets were used.
    fn inflate(&mut self, input: &[u8], buf: &mut ReadBuf<'_>) -> io::Result<usize> {
        let out = buf.initialize_unfilled();
        let (in_before, out_before) = (self.inflater.total_in(), self.inflater.total_out());
        let status = self
            .inflater
            .decompress(input, out, FlushDecompress::None)
            .map_err(corrupt)?;
        let used = (self.inflater.total_in() - in_before) as usize;
        let produced = (self.inflater.total_out() - out_before) as usize;
        self.inflate_more = produced == out.len();
        if status == Status::StreamEnd {
            self.ended = true;
        }
        buf.advance(produced);
        Ok(used)
    }

    /// Compresses `data` (or, with `Sync`, everything still held) into `output`.
    fn deflate(&mut self, mut data: &[u8], flush: FlushCompress) -> io::Result<()> {
        let deflater = self.deflater.get_or_insert_with(|| {
            // RFC 4978 §3 calls for raw DEFLATE: no zlib header. Level 6 is zlib's default
            // balance of ratio and CPU.
            Compress::new(Compression::new(6), false)
        });
        loop {
            if self.output.capacity() - self.output.len() < 1024 {
                self.output.reserve(4096.max(data.len() / 2));
            }
            let before = deflater.total_in();
            deflater
                .compress_vec(data, &mut self.output, flush)
                .map_err(|e| io::Error::other(format!("DEFLATE failed: {e}")))?;
            data = &data[(deflater.total_in() - before) as usize..];
            // Done when all input is taken and, for a sync flush, the output did not fill the
            // room it had (zlib's rule for knowing a flush is complete).
            if data.is_empty() && self.output.len() < self.output.capacity() {
                return Ok(());
            }
        }
    }

    /// Writes pending compressed output to the socket.
    fn poll_drain<S: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while self.written < self.output.len() {
            let n = ready!(Pin::new(&mut *inner).poll_write(cx, &self.output[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        // Drained: give the buffer back rather than keep it on an idle connection.
        self.output = Vec::new();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for MaybeDeflate<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(st) = this.deflate.as_mut() else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if st.ended {
                // End of the client's stream reads as end of file.
                return Poll::Ready(Ok(()));
            }
            if !st.input.is_empty() || st.inflate_more {
                let input = std::mem::take(&mut st.input);
                let filled = buf.filled().len();
                let used = st.inflate(&input, buf)?;
                if used < input.len() {
                    st.input = input[used..].to_vec();
                }
                if buf.filled().len() > filled {
                    return Poll::Ready(Ok(()));
                }
                if !st.input.is_empty() && !st.ended {
                    // Input left, room in the buffer, nothing produced: the inflater cannot
                    // make progress, which only a broken stream causes.
                    return Poll::Ready(Err(corrupt("no progress")));
                }
                st.inflate_more = false;
                continue;
            }
            let mut raw = [0u8; RAW_READ];
            let mut raw_buf = ReadBuf::new(&mut raw);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut raw_buf))?;
            let raw = raw_buf.filled();
            if raw.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let filled = buf.filled().len();
            let used = st.inflate(raw, buf)?;
            if used < raw.len() && !st.ended {
                st.input = raw[used..].to_vec();
            }
            if buf.filled().len() > filled {
                return Poll::Ready(Ok(()));
            }
            // A block header or a sync-flush marker alone produces nothing: read on.
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for MaybeDeflate<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let Some(st) = this.deflate.as_mut() else {
            return Pin::new(&mut this.inner).poll_write(cx, data);
        };
        if st.output.len() - st.written >= OUTPUT_HIGH_WATER {
            ready!(st.poll_drain(&mut this.inner, cx))?;
        }
        st.deflate(data, FlushCompress::None)?;
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(st) = this.deflate.as_mut() {
            if st.deflater.is_some() {
                // A sync flush ends on a byte boundary with everything emitted (RFC 1951
                // §3.2.4 empty stored block), so the deflater can go (see the module comment).
                st.deflate(&[], FlushCompress::Sync)?;
                st.deflater = None;
            }
            ready!(st.poll_drain(&mut this.inner, cx))?;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compress, Decompress};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    /// A client-side raw DEFLATE pair, as a real client keeps one for the whole connection.
    struct Client {
        compress: Compress,
        decompress: Decompress,
    }

    impl Client {
        fn new() -> Client {
            Client {
                compress: Compress::new(Compression::default(), false),
                decompress: Decompress::new(false),
            }
        }

        fn pack(&mut self, data: &[u8]) -> Vec<u8> {
            let mut out = Vec::with_capacity(data.len() + 1024);
            self.compress
                .compress_vec(data, &mut out, FlushCompress::Sync)
                .expect("compress");
            out
        }

        fn unpack(&mut self, data: &[u8]) -> Vec<u8> {
            let mut out = Vec::with_capacity(data.len() * 20 + 4096);
            self.decompress
                .decompress_vec(data, &mut out, FlushDecompress::Sync)
                .expect("decompress");
            out
        }
    }

    #[tokio::test]
    async fn both_directions_round_trip_across_bursts() {
        let (server_side, mut client_side) = duplex(1 << 20);
        let mut server = MaybeDeflate::new(server_side);
        server.write_all(b"a OK plain\r\n").await.expect("write");
        server.flush().await.expect("flush");
        let mut plain = [0u8; 12];
        client_side.read_exact(&mut plain).await.expect("read");
        assert_eq!(&plain, b"a OK plain\r\n");

        server.start();
        assert!(server.deflate.is_some());
        let mut client = Client::new();
        // Several bursts: each must be complete on its own at the client (sync-flushed), and
        // a fresh deflater per burst must continue the same stream.
        for i in 0..3 {
            let line = format!("* {i} FETCH (FLAGS (\\Seen))\r\n").repeat(50);
            server.write_all(line.as_bytes()).await.expect("write");
            server.flush().await.expect("flush");
            assert!(server.deflate.as_ref().expect("on").deflater.is_none());
            let mut raw = vec![0u8; 64 * 1024];
            let n = client_side.read(&mut raw).await.expect("read");
            assert!(n < line.len() / 4, "compressed {n} of {}", line.len());
            assert_eq!(client.unpack(&raw[..n]), line.as_bytes());
        }

        // Client to server, delivered in small reads and split mid-stream.
        let request = b"b NOOP\r\nc SELECT INBOX\r\n".repeat(40);
        let packed = client.pack(&request);
        let (first, second) = packed.split_at(packed.len() / 2);
        client_side.write_all(first).await.expect("write");
        client_side.write_all(second).await.expect("write");
        let mut got = Vec::new();
        let mut small = [0u8; 7];
        while got.len() < request.len() {
            let n = server.read(&mut small).await.expect("read");
            assert!(n > 0);
            got.extend_from_slice(&small[..n]);
        }
        assert_eq!(got, request);
        assert!(server.deflate.as_ref().expect("on").input.is_empty());
    }

    #[tokio::test]
    async fn corrupt_input_is_an_error_and_end_of_stream_is_eof() {
        let (server_side, mut client_side) = duplex(4096);
        let mut server = MaybeDeflate::new(server_side);
        server.start();
        // BTYPE 11 is reserved (RFC 1951 §3.2.3).
        client_side
            .write_all(&[0xff, 0xff, 0xff])
            .await
            .expect("write");
        let mut buf = [0u8; 64];
        let err = server.read(&mut buf).await.expect_err("corrupt");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);

        let (server_side, mut client_side) = duplex(4096);
        let mut server = MaybeDeflate::new(server_side);
        server.start();
        let mut c = Compress::new(Compression::default(), false);
        let mut packed = Vec::with_capacity(256);
        c.compress_vec(b"x\r\n", &mut packed, FlushCompress::Finish)
            .expect("compress");
        client_side.write_all(&packed).await.expect("write");
        let n = server.read(&mut buf).await.expect("read");
        assert_eq!(&buf[..n], b"x\r\n");
        assert_eq!(server.read(&mut buf).await.expect("eof"), 0);
    }
}
