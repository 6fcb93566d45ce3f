import AWS
import Testing

@Suite("XML reader")
struct XMLReaderTests {
    @Test("reads an EC2 response with namespaces, entities and CDATA")
    func readsResponse() throws {
        let xml = """
            <?xml version="1.0" encoding="UTF-8"?>
            <DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
              <requestId>abc</requestId>
              <!-- a comment -->
              <reservationSet><item><instancesSet><item>
                <instanceId>i-1</instanceId><privateDnsName>ip-1.ec2.internal</privateDnsName>
                <tag a="x&gt;y" b='/'>a &amp; b &lt;c&gt; &#65;&#x42;<![CDATA[<raw>]]></tag><empty/>
              </item></instancesSet></item></reservationSet>
            </DescribeInstancesResponse>
            """
        let root = try XMLReader.parse(Array(xml.utf8))
        #expect(root.name == "DescribeInstancesResponse")
        #expect(root.string("requestId") == "abc")
        let instance = try #require(root.items("reservationSet").first?.items("instancesSet").first)
        #expect(instance.string("privateDnsName") == "ip-1.ec2.internal")
        #expect(instance.string("tag") == "a & b <c> AB<raw>")
        #expect(instance.string("empty") == "")
    }

    @Test(
        "malformed documents are errors, never crashes",
        arguments: [
            "", "<a>", "<a></b>", "<a>&bogus;</a>", "<a x=1></a>", "<a></a><b/>", "garbage", "<a>&#xFFFFFFFF;</a>",
            "<!DOCTYPE a><a/>", String(repeating: "<a>", count: 100),
        ])
    func rejects(text: String) {
        #expect(throws: XMLParseError.self) { try XMLReader.parse(Array(text.utf8)) }
    }
}
