//! Synthetic lines in the documented layouts of the formats the shared corpus has no raw
//! samples of (`samples/README.md`). Embedded so tests, golden files and `haven bench parse`
//! read the same lines.

/// `(file name, contents)` of every sample.
pub const SYNTHETIC: [(&str, &str); 9] = [
    ("fortigate-webfilter.log", include_str!("../samples/fortigate-webfilter.log")),
    ("barracuda.log", include_str!("../samples/barracuda.log")),
    ("sophos.log", include_str!("../samples/sophos.log")),
    ("cisco-umbrella.csv", include_str!("../samples/cisco-umbrella.csv")),
    ("zscaler-nss.log", include_str!("../samples/zscaler-nss.log")),
    ("pan-os-url.log", include_str!("../samples/pan-os-url.log")),
    ("cef-web.log", include_str!("../samples/cef-web.log")),
    ("leef-web.log", include_str!("../samples/leef-web.log")),
    ("haven.jsonl", include_str!("../samples/haven.jsonl")),
];
