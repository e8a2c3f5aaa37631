//! Reads S3's `ListMultipartUploads` and `ListParts` answers: the in-progress uploads of a key,
//! so that an upload begun by a create request whose answer was lost can be found and aborted,
//! and the parts of one, so that an interrupted upload can be continued.

/// One in-progress upload, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub key: String,
    pub id: String,
    /// When the server began it (RFC 3339, as the server wrote it).
    pub initiated: String,
}

/// One page of the listing, and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    pub uploads: Vec<Upload>,
    /// `(key-marker, upload-id-marker)` for the next page, when the listing is truncated.
    pub next: Option<(String, String)>,
}

/// Parses one `ListMultipartUploadsResult` document. The schema is flat and fixed, so a few
/// tag lookups do the job; anything unexpected is an error rather than an empty page, since an
/// empty page would tell the caller that nothing is left to abort.
pub fn parse_page(xml: &str) -> Result<Page, String> {
    if !xml.contains("<ListMultipartUploadsResult") {
        return Err(format!(
            "not a ListMultipartUploadsResult: {:.200}",
            xml.trim()
        ));
    }
    let mut uploads = Vec::new();
    let mut rest = xml;
    while let Some((body, after)) = element(rest, "Upload") {
        let field = |name| {
            element(body, name)
                .map(|(v, _)| unescape(v))
                .ok_or_else(|| format!("an <Upload> without <{name}>"))
        };
        uploads.push(Upload {
            key: field("Key")?,
            id: field("UploadId")?,
            initiated: field("Initiated")?,
        });
        rest = after;
    }
    let truncated = element(xml, "IsTruncated").is_some_and(|(v, _)| v.trim() == "true");
    let next = if truncated {
        let marker = |name| {
            element(xml, name)
                .map(|(v, _)| unescape(v))
                .unwrap_or_default()
        };
        let next = (marker("NextKeyMarker"), marker("NextUploadIdMarker"));
        if next.0.is_empty() && next.1.is_empty() {
            return Err("a truncated listing without a next marker".to_string());
        }
        Some(next)
    } else {
        None
    };
    Ok(Page { uploads, next })
}

/// One uploaded part, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub number: usize,
    pub etag: String,
    pub size: u64,
}

/// One page of `ListParts`, and the part-number marker of the next page when truncated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartsPage {
    pub parts: Vec<Part>,
    pub next: Option<String>,
}

/// Parses one `ListPartsResult` document.
pub fn parse_parts(xml: &str) -> Result<PartsPage, String> {
    if !xml.contains("<ListPartsResult") {
        return Err(format!("not a ListPartsResult: {:.200}", xml.trim()));
    }
    let mut parts = Vec::new();
    let mut rest = xml;
    while let Some((body, after)) = element(rest, "Part") {
        let field = |name| {
            element(body, name)
                .map(|(v, _)| unescape(v))
                .ok_or_else(|| format!("a <Part> without <{name}>"))
        };
        let number = field("PartNumber")?;
        let size = field("Size")?;
        parts.push(Part {
            number: number
                .trim()
                .parse()
                .map_err(|_| format!("a part number {number:?}"))?,
            etag: field("ETag")?,
            size: size
                .trim()
                .parse()
                .map_err(|_| format!("a part size {size:?}"))?,
        });
        rest = after;
    }
    let truncated = element(xml, "IsTruncated").is_some_and(|(v, _)| v.trim() == "true");
    let next = if truncated {
        let marker = element(xml, "NextPartNumberMarker")
            .map(|(v, _)| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| "a truncated part listing without a next marker".to_string())?;
        Some(marker)
    } else {
        None
    };
    Ok(PartsPage { parts, next })
}

/// The text of the first `<name>...</name>` in `xml` (`<name/>` counts as empty), and what
/// follows it.
fn element<'a>(xml: &'a str, name: &str) -> Option<(&'a str, &'a str)> {
    let open = format!("<{name}>");
    let empty = format!("<{name}/>");
    let close = format!("</{name}>");
    let at = xml.find(&open);
    let at_empty = xml.find(&empty);
    match (at, at_empty) {
        (_, Some(e)) if at.is_none_or(|a| e < a) => Some(("", &xml[e + empty.len()..])),
        (Some(a), _) => {
            let start = a + open.len();
            let end = start + xml[start..].find(&close)?;
            Some((&xml[start..end], &xml[end + close.len()..]))
        }
        _ => None,
    }
}

/// Undoes XML's escapes: the five named entities and numeric character references.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        let Some(semi) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let entity = &tail[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .map(|hex| u32::from_str_radix(hex, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse::<u32>))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => out.push(c),
            None => out.push_str(&tail[..=semi]),
        }
        rest = &tail[semi + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>b</Bucket><KeyMarker/><UploadIdMarker></UploadIdMarker>
  <NextKeyMarker>a &amp; b/k.bin</NextKeyMarker><NextUploadIdMarker>id-2</NextUploadIdMarker>
  <Prefix>a &amp; b/</Prefix><MaxUploads>2</MaxUploads><IsTruncated>true</IsTruncated>
  <Upload><Key>a &amp; b/k.bin</Key><UploadId>id-1</UploadId>
    <Initiator><ID>x</ID></Initiator><Initiated>2026-12-01T10:00:00.000Z</Initiated></Upload>
  <Upload><Key>a &amp; b/&#233;.bin</Key><UploadId>id-2</UploadId>
    <Initiated>2026-12-01T10:00:01Z</Initiated></Upload>
</ListMultipartUploadsResult>"#;

    #[test]
    fn reads_uploads_and_the_next_markers() {
        let page = parse_page(PAGE).unwrap();
        assert_eq!(page.uploads.len(), 2);
        assert_eq!(page.uploads[0].key, "a & b/k.bin");
        assert_eq!(page.uploads[0].id, "id-1");
        assert_eq!(page.uploads[0].initiated, "2026-12-01T10:00:00.000Z");
        assert_eq!(page.uploads[1].key, "a & b/é.bin");
        assert_eq!(
            page.next,
            Some(("a & b/k.bin".to_string(), "id-2".to_string()))
        );
    }

    #[test]
    fn an_empty_final_page() {
        let xml = "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated>\
                   </ListMultipartUploadsResult>";
        assert_eq!(parse_page(xml).unwrap(), Page::default());
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(parse_page("<Error><Code>AccessDenied</Code></Error>").is_err());
        let torn = "<ListMultipartUploadsResult><Upload><Key>k</Key></Upload>\
                    </ListMultipartUploadsResult>";
        assert!(parse_page(torn).is_err());
        let unmarked = "<ListMultipartUploadsResult><IsTruncated>true</IsTruncated>\
                        </ListMultipartUploadsResult>";
        assert!(parse_page(unmarked).is_err());
    }

    #[test]
    fn reads_parts() {
        let xml = r#"<ListPartsResult><Bucket>b</Bucket><Key>k</Key><UploadId>u</UploadId>
          <PartNumberMarker>0</PartNumberMarker><NextPartNumberMarker>2</NextPartNumberMarker>
          <IsTruncated>true</IsTruncated>
          <Part><PartNumber>1</PartNumber><LastModified>x</LastModified>
            <ETag>&quot;abc&quot;</ETag><Size>5242880</Size></Part>
          <Part><PartNumber>2</PartNumber><ETag>"def"</ETag><Size>7</Size></Part>
        </ListPartsResult>"#;
        let page = parse_parts(xml).unwrap();
        assert_eq!(
            page.parts,
            vec![
                Part {
                    number: 1,
                    etag: "\"abc\"".into(),
                    size: 5242880
                },
                Part {
                    number: 2,
                    etag: "\"def\"".into(),
                    size: 7
                },
            ]
        );
        assert_eq!(page.next.as_deref(), Some("2"));
        assert!(parse_parts(
            "<ListPartsResult><Part><PartNumber>x</PartNumber>\
                             <ETag>e</ETag><Size>1</Size></Part></ListPartsResult>"
        )
        .is_err());
    }

    #[test]
    fn leaves_unknown_entities_as_written() {
        assert_eq!(unescape("a &bogus; b &#xZZ; &"), "a &bogus; b &#xZZ; &");
    }
}
