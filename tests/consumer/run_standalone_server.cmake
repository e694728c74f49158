# CTest consumer.standalone_server, in script mode: what a team does with
# examples/standalone_server. Install gatehouse into a scratch prefix, copy the example's
# directory out of the tree, build it there against the install with find_package(gatehouse),
# and run the example's end-to-end test against the program built that way.
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)

function(step)
    execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "step failed (${rc}): ${ARGV}\n${out}")
    endif()
    message(STATUS "ok: ${ARGV}")
endfunction()

step(${CMAKE_COMMAND} --install ${GATEHOUSE_BUILD_DIR} --prefix ${prefix})
# The project's own files, without the repository's test of it.
file(GLOB example_files ${GATEHOUSE_SOURCE_DIR}/examples/standalone_server/*)
list(FILTER example_files EXCLUDE REGEX "test_standalone_server\\.py$")
file(COPY ${example_files} DESTINATION ${WORK_DIR}/standalone_server)
step(${CMAKE_COMMAND} -S ${WORK_DIR}/standalone_server -B ${WORK_DIR}/build
     -DCMAKE_PREFIX_PATH=${prefix} -G ${GENERATOR} -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}
     -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
     "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}" -DCMAKE_BUILD_TYPE=${BUILD_TYPE}
     -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
step(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
step(${PYTHON} ${GATEHOUSE_SOURCE_DIR}/examples/standalone_server/test_standalone_server.py
     ${WORK_DIR}/build/gatehouse-example-standalone-server)
