//! What every file passes before anyone sees it: its type sniffed from the bytes,
//! metadata stripped from photos, dimensions and a thumbnail for images. Pure functions
//! over bytes; the caller bounds how many run at once.

use bytes::Bytes;
use img_parts::{DynImage, ImageEXIF};
use std::io::Cursor;

/// Bytes read from the start of a file to sniff its type.
pub const SNIFF_BYTES: usize = 8192;
/// Longest side of a thumbnail, in pixels.
pub const THUMBNAIL_SIDE: u32 = 320;
/// Memory one image decode may take (the pixels of a 16-megapixel photo). Larger
/// images get no thumbnail; everything else about them still works.
pub const DECODE_MAX_ALLOC: u64 = 96 * 1024 * 1024;

/// The type of a file from its first bytes (`None`: not a type chathub recognises).
/// `text_so_far` says whether the whole file is UTF-8 text (checked by the caller as it
/// streams): text has no signature, so it is text only when nothing else matched.
pub fn sniff(head: &[u8], text: bool) -> Option<&'static str> {
    match infer::get(head) {
        Some(t) => Some(t.mime_type()),
        None if text => Some("text/plain"),
        None => None,
    }
}

/// Checks text incrementally: valid UTF-8 with no NUL byte, across chunk boundaries.
#[derive(Debug, Default)]
pub struct TextCheck {
    carry: Vec<u8>,
    failed: bool,
}

impl TextCheck {
    /// Feeds the next bytes.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.failed {
            return;
        }
        let joined;
        let chunk = if self.carry.is_empty() {
            chunk
        } else {
            let mut j = std::mem::take(&mut self.carry);
            j.extend_from_slice(chunk);
            joined = j;
            &joined[..]
        };
        if chunk.contains(&0) {
            self.failed = true;
            return;
        }
        match std::str::from_utf8(chunk) {
            Ok(_) => {}
            // An incomplete character at the end: keep it for the next chunk.
            Err(e) if e.error_len().is_none() => {
                self.carry = chunk[e.valid_up_to()..].to_vec();
            }
            Err(_) => self.failed = true,
        }
    }

    /// Whether everything fed was text.
    pub fn is_text(&self) -> bool {
        !self.failed && self.carry.is_empty()
    }
}

/// What reading an image gave.
#[derive(Debug)]
pub struct ImageFacts {
    /// The bytes to store: the original, or with its metadata removed.
    pub bytes: Bytes,
    /// Width in pixels (after orientation).
    pub width: Option<u32>,
    /// Height in pixels (after orientation).
    pub height: Option<u32>,
    /// A JPEG thumbnail, at most [`THUMBNAIL_SIDE`] on its longer side.
    pub thumbnail: Option<Vec<u8>>,
}

/// Reads an image: with `strip`, removes its location and camera metadata (EXIF, XMP,
/// IPTC) keeping only the orientation; then its dimensions and a thumbnail. An image
/// that cannot be decoded is still stored (its bytes matched an image signature), with
/// no dimensions and no thumbnail.
pub fn read_image(bytes: Bytes, strip: bool) -> ImageFacts {
    let orientation = orientation(&bytes);
    let bytes = if strip {
        strip_metadata(bytes, orientation)
    } else {
        bytes
    };
    let (mut width, mut height, mut thumbnail) = (None, None, None);
    if let Ok(reader) = image::ImageReader::new(Cursor::new(&bytes[..])).with_guessed_format() {
        let mut reader = reader;
        let mut limits = image::Limits::default();
        limits.max_alloc = Some(DECODE_MAX_ALLOC);
        reader.limits(limits);
        if let Ok(mut decoder) = reader.into_decoder() {
            use image::ImageDecoder;
            let (w, h) = decoder.dimensions();
            let o = decoder
                .orientation()
                .unwrap_or(image::metadata::Orientation::NoTransforms);
            let (w, h) = if turns(o) { (h, w) } else { (w, h) };
            (width, height) = (Some(w), Some(h));
            if let Ok(mut img) = image::DynamicImage::from_decoder(decoder) {
                img.apply_orientation(o);
                let small = img.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE).to_rgb8();
                let mut out = Cursor::new(Vec::new());
                let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 75);
                if small.write_with_encoder(encoder).is_ok() {
                    thumbnail = Some(out.into_inner());
                }
            }
        }
    }
    ImageFacts {
        bytes,
        width,
        height,
        thumbnail,
    }
}

/// Whether an orientation swaps width and height.
fn turns(o: image::metadata::Orientation) -> bool {
    use image::metadata::Orientation::*;
    matches!(o, Rotate90 | Rotate270 | Rotate90FlipH | Rotate270FlipH)
}

/// The EXIF orientation value (1–8), if the image has one.
fn orientation(bytes: &Bytes) -> Option<u16> {
    let reader = image::ImageReader::new(Cursor::new(&bytes[..]))
        .with_guessed_format()
        .ok()?;
    use image::ImageDecoder;
    let mut decoder = reader.into_decoder().ok()?;
    let o = decoder.orientation().ok()?;
    Some(o.to_exif() as u16).filter(|&v| v != 1)
}

/// An EXIF block holding nothing but the orientation (TIFF, little-endian, one entry).
fn orientation_only_exif(orientation: u16) -> Bytes {
    let mut b = Vec::with_capacity(26);
    b.extend_from_slice(b"II\x2a\x00\x08\x00\x00\x00"); // header, IFD0 at 8
    b.extend_from_slice(&1u16.to_le_bytes()); // one entry
    b.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    b.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    b.extend_from_slice(&1u32.to_le_bytes()); // count
    b.extend_from_slice(&(orientation as u32).to_le_bytes()); // value, left-justified
    b.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    Bytes::from(b)
}

/// Removes EXIF, XMP and IPTC from a JPEG, PNG or WebP (GIFs carry none that matter);
/// the picture's bytes are untouched. Returns the input when it cannot be parsed.
pub fn strip_metadata(bytes: Bytes, orientation: Option<u16>) -> Bytes {
    let Ok(Some(mut img)) = DynImage::from_bytes(bytes.clone()) else {
        return bytes;
    };
    match &mut img {
        DynImage::Jpeg(jpeg) => {
            use img_parts::jpeg::markers::{APP1, APP13};
            // APP1 holds EXIF and XMP; APP13 Photoshop's IPTC.
            jpeg.segments_mut()
                .retain(|s| s.marker() != APP1 && s.marker() != APP13);
        }
        DynImage::Png(png) => {
            // eXIf, and the text chunks XMP and other metadata ride in.
            png.chunks_mut()
                .retain(|c| !matches!(&c.kind(), b"eXIf" | b"iTXt" | b"tEXt" | b"zTXt"));
        }
        DynImage::WebP(webp) => {
            webp.set_exif(None);
            webp.remove_chunks_by_id(*b"XMP ");
        }
    }
    if let Some(o) = orientation {
        img.set_exif(Some(orientation_only_exif(o)));
    }
    img.encoder().bytes()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn text_is_utf8_without_nul_across_chunks() {
        let mut t = TextCheck::default();
        let s = "héllo ✓ wörld".as_bytes();
        for chunk in s.chunks(3) {
            t.feed(chunk);
        }
        assert!(t.is_text());
        let mut bin = TextCheck::default();
        bin.feed(b"abc\0def");
        assert!(!bin.is_text());
        let mut bad = TextCheck::default();
        bad.feed(&[0xff, 0xfe, 0x41]);
        assert!(!bad.is_text());
        let mut cut = TextCheck::default();
        cut.feed(&"✓".as_bytes()[..2]);
        assert!(!cut.is_text(), "a file ending mid-character is not text");
    }

    #[test]
    fn sniffing_goes_by_the_bytes() {
        assert_eq!(sniff(b"%PDF-1.7\n", false), Some("application/pdf"));
        assert_eq!(
            sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10], false),
            Some("image/jpeg")
        );
        assert_eq!(sniff(b"just words", true), Some("text/plain"));
        assert_eq!(
            sniff(b"MZ\x90\x00", false),
            Some("application/vnd.microsoft.portable-executable")
        );
        assert_eq!(sniff(&[1, 2, 3], false), None);
    }

    #[test]
    fn the_orientation_block_is_valid_exif() {
        let exif = orientation_only_exif(6);
        assert_eq!(exif.len(), 26);
        assert_eq!(&exif[..4], b"II\x2a\x00");
    }
}
