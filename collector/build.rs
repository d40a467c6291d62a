//! Embeds the web dashboard: the files `scripts/build-web.sh` builds into
//! `web/dist`, gzipped here so the collector serves them without a second
//! web server, a CDN or the internet. Without a built dashboard (a plain
//! `cargo build` on a machine without Node.js) a page saying how to build
//! it takes its place, unless `NIGHTJAR_REQUIRE_WEB` is set: the test, demo
//! and package scripts set it, so a collector without its dashboard never
//! ships by accident.

use std::io::Write as _;
use std::path::{Path, PathBuf};

const FILES: [(&str, &str, &str); 3] = [
    ("/", "index.html", "text/html; charset=utf-8"),
    ("/app.js", "app.js", "text/javascript; charset=utf-8"),
    ("/app.css", "app.css", "text/css; charset=utf-8"),
];

const PLACEHOLDER: &str = "<!doctype html><meta charset=utf-8><title>Nightjar</title>\
<h1>The dashboard is not built into this collector</h1>\
<p>Build it with <code>scripts/build-web.sh</code> (Node.js 20 and npm), then build the collector again.\
 The gRPC, gRPC-web, <a href=/healthz>/healthz</a> and <a href=/metrics>/metrics</a> endpoints work without it.</p>";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let dist = manifest.join("../web/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    println!("cargo:rerun-if-env-changed=NIGHTJAR_REQUIRE_WEB");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let built = FILES.iter().all(|(_, f, _)| dist.join(f).is_file());
    if !built {
        if std::env::var_os("NIGHTJAR_REQUIRE_WEB").is_some() {
            panic!(
                "NIGHTJAR_REQUIRE_WEB is set but {} has no built dashboard: run scripts/build-web.sh",
                dist.display()
            );
        }
        println!(
            "cargo:warning=web/dist is not built: the collector serves a page saying so at /; run scripts/build-web.sh"
        );
    }
    let mut table =
        String::from("/// The dashboard's files: (path, content type, gzipped body, etag).\n");
    table.push_str(&format!("pub const BUILT: bool = {built};\n"));
    table.push_str("pub static ASSETS: &[(&str, &str, &[u8], &str)] = &[\n");
    for (i, (path, file, content_type)) in FILES.iter().enumerate() {
        let body = if built {
            std::fs::read(dist.join(file)).unwrap()
        } else if *path == "/" {
            PLACEHOLDER.as_bytes().to_vec()
        } else {
            Vec::new()
        };
        let gz = out.join(format!("web-{i}.gz"));
        write_gzip(&gz, &body);
        table.push_str(&format!(
            "    ({path:?}, {content_type:?}, include_bytes!({:?}), \"\\\"{:016x}\\\"\"),\n",
            gz.display().to_string(),
            fnv1a(&body)
        ));
    }
    table.push_str("];\n");
    std::fs::write(out.join("web_assets.rs"), table).unwrap();
}

fn write_gzip(path: &Path, body: &[u8]) {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(body).unwrap();
    std::fs::write(path, enc.finish().unwrap()).unwrap();
}

/// A content hash for the ETag (not security relevant).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
