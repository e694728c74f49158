# bindings.c_installed, in CTest's script mode: install this build into a scratch prefix and use
# the C binding only through what was installed. Each step must succeed or the test fails.
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
set(inc ${prefix}/${INCLUDEDIR})
set(lib ${prefix}/${LIBDIR})
separate_arguments(san UNIX_COMMAND "${SANITIZER_FLAGS}")

function(step)
    execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "step failed (${rc}): ${ARGV}\n${out}")
    endif()
    message(STATUS "ok: ${ARGV}")
    set(step_output "${out}" PARENT_SCOPE)
endfunction()

step(${CMAKE_COMMAND} --install ${GATEHOUSE_BUILD_DIR} --prefix ${prefix})
foreach(file ${inc}/gatehouse_c.h ${lib}/libgatehouse_c.a ${lib}/libgatehouse_c.so)
    if(NOT EXISTS ${file})
        message(FATAL_ERROR "not installed: ${file}")
    endif()
endforeach()

# The header alone, as strict C89 and as C++11.
step(${C_COMPILER} -std=c89 -pedantic -Wall -Wextra -Werror -fsyntax-only -I${inc}
     ${SOURCE_DIR}/tests/header_c89.c)
step(${CXX_COMPILER} -std=c++11 -x c++ -pedantic -Wall -Wextra -Werror -fsyntax-only -I${inc}
     ${SOURCE_DIR}/tests/header_c89.c)

# Plain compiler command lines, as a build system without CMake would write them. The static
# library needs the client codec's archive and the C++ runtime after it; the shared one nothing.
set(cflags -std=c99 -pedantic -Wall -Wextra -Werror ${san} -I${inc})
set(example ${SOURCE_DIR}/examples/example.c)
step(${C_COMPILER} ${cflags} ${example} ${lib}/libgatehouse_c.a
     ${lib}/libgatehouse_client_codec.a -lstdc++ -o ${WORK_DIR}/example_static)
step(${WORK_DIR}/example_static)
step(${C_COMPILER} ${cflags} ${example} -L${lib} -lgatehouse_c -Wl,-rpath,${lib}
     -o ${WORK_DIR}/example_shared)
step(${WORK_DIR}/example_shared)
if(NOT step_output MATCHES "received ack for c-17")
    message(FATAL_ERROR "unexpected example output: ${step_output}")
endif()

# The shared library exports exactly the header's functions.
file(STRINGS ${inc}/gatehouse_c.h api_lines REGEX "GATEHOUSE_C_API[^(]* \\**gatehouse_[a-z_0-9]+\\(")
set(declared "")
foreach(line IN LISTS api_lines)
    string(REGEX MATCH "gatehouse_[a-z_0-9]+\\(" name "${line}")
    string(REPLACE "(" "" name "${name}")
    list(APPEND declared ${name})
endforeach()
list(SORT declared)
step(${NM} -D --defined-only ${lib}/libgatehouse_c.so)
string(REGEX MATCHALL "[0-9a-f]+ T [^\n]+" text_symbols "${step_output}")
set(exported "")
foreach(entry IN LISTS text_symbols)
    string(REGEX REPLACE "^[0-9a-f]+ T " "" name "${entry}")
    list(APPEND exported ${name})
endforeach()
list(SORT exported)
list(LENGTH declared declared_count)
if(declared_count LESS 15 OR NOT declared STREQUAL exported)
    message(FATAL_ERROR "libgatehouse_c.so exports\n  ${exported}\nbut the header declares\n"
                        "  ${declared}")
endif()
message(STATUS "ok: libgatehouse_c.so exports the ${declared_count} functions of the header")

# find_package(gatehouse) from an outside project with C sources.
step(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/installed_project -B ${WORK_DIR}/build
     -DCMAKE_PREFIX_PATH=${prefix} -G ${GENERATOR} -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}
     -DCMAKE_C_COMPILER=${C_COMPILER} -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
     "-DCMAKE_C_FLAGS=${SANITIZER_FLAGS}" "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}"
     -DCMAKE_BUILD_TYPE=${BUILD_TYPE} -DEXAMPLE=${example}
     -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
step(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
step(${WORK_DIR}/build/c_example_static)
step(${WORK_DIR}/build/c_example_shared)
