#pragma once
// The socket a connection owns, plain or TLS, and the buffer a plain one reads into.

#include <array>
#include <cstddef>
#include <memory>
#include <type_traits>
#include <utility>

#include <asio/buffer.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/stream.hpp>

namespace gatehouse::detail {

// A TCP socket on the io_context's own executor rather than Asio's default type-erased
// any_io_executor, which every socket and every pending operation would carry (tens of bytes
// per idle connection).
using transport_socket = asio::basic_stream_socket<asio::ip::tcp, asio::io_context::executor_type>;

// What a connection reads and writes through: the TCP socket, or a TLS stream over it.
template <bool Tls>
using connection_stream =
    std::conditional_t<Tls, asio::ssl::stream<transport_socket>, transport_socket>;

template <bool Tls>
connection_stream<Tls> make_connection_stream(transport_socket socket, asio::ssl::context* tls) {
    if constexpr (Tls) {
        return connection_stream<Tls>(std::move(socket), *tls);
    } else {
        static_cast<void>(tls);
        return socket;
    }
}

// The TCP socket under a connection's stream.
template <class Stream>
transport_socket& tcp_layer(Stream& stream) noexcept {
    if constexpr (std::is_same_v<Stream, transport_socket>) {
        return stream;
    } else {
        return stream.next_layer();
    }
}

// A TLS connection reads through its stream into a buffer of its own (made at its first read);
// a plain one has none (EBO: a base of the connection, empty for plain sockets).
template <bool Tls>
struct tls_read_buffer {};

template <>
struct tls_read_buffer<true> {
    std::unique_ptr<std::array<char, 4096>> tls_buffer_;
};

// The read buffer of the calling I/O thread (plain sockets): an idle connection holds none.
inline asio::mutable_buffer thread_read_buffer() {
    constexpr std::size_t size = std::size_t{64} * 1024;
    thread_local std::unique_ptr<char[]> buffer(new char[size]);
    return {buffer.get(), size};
}

}  // namespace gatehouse::detail
