// Serves the embedded web client: `/` is index.html, every other file its own path.
#include "web_client.hpp"

#include <stdexcept>
#include <string>
#include <string_view>

#include "web_assets.hpp"

namespace gatehouse_demo {

namespace {

// The media type of a file by its extension. A file of a kind not listed here is a mistake in
// CMakeLists.txt (browsers refuse module scripts served with the wrong type), so it throws.
std::string content_type_of(std::string_view path) {
    const auto ends_with = [&](std::string_view suffix) {
        return path.size() >= suffix.size() &&
               path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (ends_with(".html")) return "text/html; charset=utf-8";
    if (ends_with(".css")) return "text/css; charset=utf-8";
    if (ends_with(".js")) return "text/javascript; charset=utf-8";
    if (ends_with(".svg")) return "image/svg+xml";
    throw std::logic_error("web client: no content type for " + std::string(path));
}

gatehouse::http_response asset_response(const web::web_asset& asset) {
    gatehouse::http_response r;
    r.content_type = content_type_of(asset.path);
    r.body = std::string(asset.body);
    r.headers = {
        // Revalidate on every load: the files change with the binary, and a page mixing a
        // cached old module with a new one breaks in odd ways. (No ETag/304: the gateway
        // always sends Content-Length, which a 304 must not carry as 0.) They are a few KiB.
        {"Cache-Control", "no-cache"},
        {"X-Content-Type-Options", "nosniff"},
        // The page loads only its own files and talks only to its own origin ('self' covers
        // ws: and wss: to the same host).
        {"Content-Security-Policy",
         "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"},
        {"Referrer-Policy", "no-referrer"},
    };
    return r;
}

void add_route(gatehouse::gateway& gw, std::string path, const web::web_asset& asset) {
    gw.add_route("GET", std::move(path),
                 [response = asset_response(asset)](const gatehouse::http_request& /*request*/,
                                                    const gatehouse::http_responder& respond) {
                     respond(response);
                 });
}

}  // namespace

void add_web_client_routes(gatehouse::gateway& gw) {
    for (const web::web_asset& asset : web::embedded_web_assets()) {
        add_route(gw, std::string(asset.path), asset);
        if (asset.path == "/index.html") add_route(gw, "/", asset);
    }
}

}  // namespace gatehouse_demo
