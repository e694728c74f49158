# Runs in CTest's script mode. Each step must succeed or the test fails.
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
step(${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${WORK_DIR}/build
     -DCMAKE_PREFIX_PATH=${prefix} -G ${GENERATOR} -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}
     -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
     "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}" -DCMAKE_BUILD_TYPE=${BUILD_TYPE}
     -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_DISABLE_FIND_PACKAGE_nlohmann_json=ON)
step(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
step(${WORK_DIR}/build/consumer_app)
step(${WORK_DIR}/build/consumer_client_only)

# The optional components, found on request with their own dependencies.
step(${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR}/../components_project -B ${WORK_DIR}/components
     -DCMAKE_PREFIX_PATH=${prefix} -G ${GENERATOR} -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}
     -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
     "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}" -DCMAKE_BUILD_TYPE=${BUILD_TYPE}
     -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_DISABLE_FIND_PACKAGE_nlohmann_json=ON)
step(${CMAKE_COMMAND} --build ${WORK_DIR}/components)
step(${WORK_DIR}/components/components_app)

# The same client program, vendoring the source tree with add_subdirectory() and building the
# client codec alone. CMAKE_DISABLE_FIND_PACKAGE_* makes any attempt to find a third-party
# package fail the configure, proving the client codec needs none.
set(no_packages "")
foreach(pkg nlohmann_json Protobuf Catch2 CLI11 spdlog Threads benchmark simdjson msgpack)
    list(APPEND no_packages -DCMAKE_DISABLE_FIND_PACKAGE_${pkg}=ON)
endforeach()
step(${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR}/../subdir_project -B ${WORK_DIR}/subdir
     -DGATEHOUSE_SOURCE_DIR=${GATEHOUSE_SOURCE_DIR} -G ${GENERATOR} -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}
     -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
     "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}" -DCMAKE_BUILD_TYPE=${BUILD_TYPE} ${no_packages})
step(${CMAKE_COMMAND} --build ${WORK_DIR}/subdir)
step(${WORK_DIR}/subdir/consumer_subdir_client)
