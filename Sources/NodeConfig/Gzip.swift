import CZlib

/// gzip decompression through zlib.
enum Gzip {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func isGzip(_ bytes: [UInt8]) -> Bool { bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B }

    /// Inflates a gzip stream (concatenated members included); more than `limit` bytes out is an error.
    static func decompress(_ input: [UInt8], limit: Int) throws(Failure) -> [UInt8] {
        var stream = z_stream()
        // 15 + 16: a 32 KiB window and a gzip header, as `gzip` writes.
        guard czlib_inflate_init2(&stream, 15 + 16) == Z_OK else { throw Failure(description: "zlib cannot start") }
        defer { inflateEnd(&stream) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var input = input
        var status: Int32 = Z_OK
        let consumed: Int = input.withUnsafeMutableBufferPointer { source -> Int in
            stream.next_in = source.baseAddress
            stream.avail_in = UInt32(source.count)
            while true {
                let produced = chunk.withUnsafeMutableBufferPointer { target -> Int in
                    stream.next_out = target.baseAddress
                    stream.avail_out = UInt32(target.count)
                    status = inflate(&stream, Z_NO_FLUSH)
                    return target.count - Int(stream.avail_out)
                }
                output.append(contentsOf: chunk[0..<produced])
                if output.count > limit || status != Z_OK { break }
                if stream.avail_in == 0 && produced == 0 { break }
                // A finished member followed by another one (`cat a.gz b.gz`).
            }
            if status == Z_STREAM_END && stream.avail_in > 0 {
                return source.count - Int(stream.avail_in)
            }
            return source.count
        }
        if output.count > limit {
            throw Failure(description: "it inflates to more than \(limit) bytes")
        }
        switch status {
        case Z_STREAM_END:
            if consumed < input.count {
                let rest = Array(input[consumed...])
                if isGzip(rest) { return output + (try decompress(rest, limit: limit - output.count)) }
                throw Failure(description: "\(rest.count) bytes of trailing data after the gzip stream")
            }
            return output
        case Z_OK, Z_BUF_ERROR:
            throw Failure(description: "the data is truncated")
        default:
            let reason = stream.msg.map { String(cString: $0) } ?? "zlib error \(status)"
            throw Failure(description: reason)
        }
    }
}
