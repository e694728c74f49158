# bytes_as_string_literals(FILE LINES_VAR SIZE_VAR): the bytes of FILE as C++ string literals of
# \xNN escapes (exact bytes, NULs included), 32 bytes per line, each line indented by 8 spaces
# and ending in a newline (adjacent literals concatenate; an empty file gives one ""), and its
# size in bytes. Included by the build-time generators (cmake -P) that compile files in:
# cmake/embed_openapi.cmake and demo/web/embed_files.cmake.

function(bytes_as_string_literals file lines_var size_var)
    file(READ "${file}" hex HEX)
    string(LENGTH "${hex}" hex_length)
    math(EXPR size "${hex_length} / 2")
    set(lines "")
    set(offset 0)
    while(offset LESS hex_length)
        string(SUBSTRING "${hex}" ${offset} 64 chunk)
        string(REGEX REPLACE "(..)" "\\\\x\\1" chunk "${chunk}")
        string(APPEND lines "        \"${chunk}\"\n")
        math(EXPR offset "${offset} + 64")
    endwhile()
    if(lines STREQUAL "")
        set(lines "        \"\"\n")
    endif()
    set(${lines_var} "${lines}" PARENT_SCOPE)
    set(${size_var} "${size}" PARENT_SCOPE)
endfunction()
