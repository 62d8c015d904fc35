//! Files for attachment tests: a photo that says where it was taken, a PDF.

use bytes::Bytes;
use img_parts::ImageEXIF;

/// The place [`photo_with_location`] names in its metadata.
pub const PHOTO_PLACE: &[u8] = b"48.8584";

/// A JPEG whose EXIF says where it was taken (GPS IFD and a description naming the
/// place) and that it is turned (orientation 6).
pub fn photo_with_location() -> Vec<u8> {
    let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
    let mut jpeg = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut jpeg, image::ImageFormat::Jpeg)
        .expect("encodes");
    // TIFF, little-endian: IFD0 (3 entries) at 8, the description after it, the GPS
    // IFD after that.
    let description = b"Taken at 48.8584N 2.2945E\0";
    let ifd0_len = 2 + 3 * 12 + 4;
    let desc_at = 8 + ifd0_len;
    let gps_at = desc_at + description.len();
    let mut t = Vec::new();
    t.extend_from_slice(b"II\x2a\x00\x08\x00\x00\x00");
    t.extend_from_slice(&3u16.to_le_bytes());
    let entry = |t: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: u32| {
        t.extend_from_slice(&tag.to_le_bytes());
        t.extend_from_slice(&kind.to_le_bytes());
        t.extend_from_slice(&count.to_le_bytes());
        t.extend_from_slice(&value.to_le_bytes());
    };
    entry(&mut t, 0x010E, 2, description.len() as u32, desc_at as u32);
    entry(&mut t, 0x0112, 3, 1, 6);
    entry(&mut t, 0x8825, 4, 1, gps_at as u32);
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(description);
    t.extend_from_slice(&1u16.to_le_bytes());
    entry(&mut t, 0x0001, 2, 2, u32::from_le_bytes(*b"N\0\0\0"));
    t.extend_from_slice(&0u32.to_le_bytes());
    let mut parsed =
        img_parts::jpeg::Jpeg::from_bytes(Bytes::from(jpeg.into_inner())).expect("encodes");
    parsed.set_exif(Some(Bytes::from(t)));
    parsed.encoder().bytes().to_vec()
}

/// A PDF of `len` bytes (a real header, then filler): sniffed as `application/pdf`.
pub fn pdf(len: usize) -> Vec<u8> {
    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.extend((0..len.saturating_sub(pdf.len())).map(|i| (i % 251) as u8));
    pdf
}
