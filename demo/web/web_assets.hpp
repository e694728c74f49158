#pragma once
// The web client's files (demo/web/site), compiled into the binary: web_assets.cpp is generated
// at build time by embed_files.cmake.

#include <string_view>
#include <vector>

namespace gatehouse_demo::web {

/// One embedded file.
struct web_asset {
    std::string_view path;  ///< The URL path it is served at, e.g. `/game.js`.
    std::string_view body;  ///< Its exact bytes; static storage.
};

/// Every embedded file, in the order CMakeLists.txt lists them.
std::vector<web_asset> embedded_web_assets();

}  // namespace gatehouse_demo::web
