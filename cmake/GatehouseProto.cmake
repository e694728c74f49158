# gatehouse_add_proto_library(target): a static library of libprotobuf's generated code for
# proto/gatehouse.proto. Tests, fuzzers and benchmarks use it as an independent
# implementation of the Protobuf wire format to check and compare our codec against.
function(gatehouse_add_proto_library target)
    find_package(Protobuf REQUIRED)
    set(out ${CMAKE_CURRENT_BINARY_DIR}/${target}_gen)
    set(proto ${PROJECT_SOURCE_DIR}/proto/gatehouse.proto)
    file(MAKE_DIRECTORY ${out})
    add_custom_command(
        OUTPUT ${out}/gatehouse.pb.cc ${out}/gatehouse.pb.h
        COMMAND protobuf::protoc --cpp_out=${out} -I ${PROJECT_SOURCE_DIR}/proto ${proto}
        DEPENDS ${proto} protobuf::protoc
        COMMENT "protoc gatehouse.proto (${target})")
    add_library(${target} STATIC ${out}/gatehouse.pb.cc)
    target_include_directories(${target} SYSTEM PUBLIC ${out})
    target_link_libraries(${target} PUBLIC protobuf::libprotobuf)
endfunction()
