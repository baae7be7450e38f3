//! Static files, embedded in the binary (rust-embed): gantry's own `static/`, and the
//! parts of xterm.js it uses, from `node_modules` (installed from the npm registry with the
//! committed lockfile).

use actix_web::{web, HttpResponse};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "static/"]
struct Static;

#[derive(RustEmbed)]
#[folder = "node_modules/@xterm/"]
#[include = "xterm/lib/xterm.js"]
#[include = "xterm/css/xterm.css"]
#[include = "addon-fit/lib/addon-fit.js"]
struct Vendor;

fn serve(file: Option<rust_embed::EmbeddedFile>) -> HttpResponse {
    match file {
        Some(f) => HttpResponse::Ok()
            .content_type(f.metadata.mimetype())
            .insert_header(("Cache-Control", "no-cache"))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .body(f.data.into_owned()),
        None => HttpResponse::NotFound()
            .content_type("text/plain")
            .body("no such file"),
    }
}

pub async fn static_file(path: web::Path<String>) -> HttpResponse {
    let path = path.into_inner();
    match path.strip_prefix("vendor/") {
        Some(rest) => serve(Vendor::get(rest)),
        None => serve(Static::get(&path)),
    }
}
