// trustme-manifest(5): the canonical text, its strict parser, and the comparison's reasons.
#include <gtest/gtest.h>

#include "base/error.hpp"
#include "signing/manifest.hpp"

using namespace trustme::signing;

namespace {

std::string with_digest(const std::string& body) { return body + "digest sha256=" + sha256_hex(body) + "\n"; }

std::string parse_error(const std::string& text) {
    try {
        parse_manifest(text, "M");
    } catch (const trustme::Error& e) {
        return e.what();
    }
    return "";
}

const std::string kHash(64, 'a');

}  // namespace

TEST(Manifest, Sha256) {
    EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Manifest, EncodeField) {
    EXPECT_EQ(encode_field("/a b\n%c\xff"), "/a%20b%0A%25c%FF");
    EXPECT_EQ(encode_field("/plain-name_1.2=x"), "/plain-name_1.2=x");
}

TEST(Manifest, RenderParseRoundTrip) {
    Manifest m;
    m.config_sha256 = kHash;
    Entry root;
    root.path = "/";
    root.type = 'd';
    root.mode = 0755;
    Entry f;
    f.path = "/a b";
    f.type = 'f';
    f.mode = 04755;
    f.uid = 1;
    f.gid = 2;
    f.size = 3;
    f.sha256 = kHash;
    f.xattrs = {{"security.capability", std::string("\x01\x00", 2)}, {"user.x", "y"}};
    Entry l;
    l.path = "/l";
    l.type = 'l';
    l.mode = 0777;
    l.target = "../x y";
    Entry c;
    c.path = "/null";
    c.type = 'c';
    c.mode = 0666;
    c.rdev_major = 1;
    c.rdev_minor = 3;
    Entry h;
    h.path = "/z";
    h.type = 'f';
    h.mode = 04755;
    h.uid = 1;
    h.gid = 2;
    h.link = "/a b";
    m.entries = {root, f, l, c, h};
    std::string text = render(m);
    EXPECT_EQ(text.substr(0, text.rfind("digest")),
              "trustme-manifest v1\nconfig sha256=" + kHash +
                  "\n/ d 0755 0 0\n/a%20b f 4755 1 2 size=3 sha256=" + kHash +
                  " xattr.security.capability=0100 xattr.user.x=79\n/l l 0777 0 0 target=../x%20y\n"
                  "/null c 0666 0 0 rdev=1:3\n/z f 4755 1 2 link=/a%20b\n");
    Manifest back = parse_manifest(text, "M");
    ASSERT_EQ(back.entries.size(), 5u);
    EXPECT_EQ(render(back), text);
    EXPECT_EQ(compare_entries(back.entries, m.entries), "");
}

TEST(Manifest, ParserIsStrict) {
    const std::string h = "trustme-manifest v1\n/ d 0755 0 0\n";
    EXPECT_EQ(parse_error(""), "M: empty");
    EXPECT_EQ(parse_error("trustme-manifest v1\n/ d 0755 0 0"), "M: truncated (no final newline)");
    EXPECT_EQ(parse_error(h), "M: truncated (no digest line)");
    EXPECT_EQ(parse_error("something else\n"), "M line 1: not a trustme manifest (expected \"trustme-manifest v1\")");
    EXPECT_EQ(parse_error(h + "digest sha256=" + kHash + "\n"),
              "M line 3: digest does not match the manifest's content");
    EXPECT_EQ(parse_error(with_digest(h) + "/x d 0755 0 0\n"), "M line 4: text after the digest line");
    EXPECT_EQ(parse_error(with_digest(h + "/../etc d 0755 0 0\n")),
              "M line 3: path /../etc: leaves the rootfs (.. component)");
    EXPECT_EQ(parse_error(with_digest(h + "/a/./b d 0755 0 0\n")), "M line 3: path /a/./b: has a . component");
    EXPECT_EQ(parse_error(with_digest(h + "//a d 0755 0 0\n")), "M line 3: path //a: has an empty component (//)");
    EXPECT_EQ(parse_error(with_digest(h + "a d 0755 0 0\n")), "M line 3: path a: is not absolute");
    EXPECT_EQ(parse_error(with_digest(h + "/a%2Fb d 0755 0 0\n")), "M line 3: path /a%2Fb: bad encoding");
    EXPECT_EQ(parse_error(with_digest(h + "/b d 0755 0 0\n/a d 0755 0 0\n")),
              "M line 4: /a: out of canonical order or duplicate");
    EXPECT_EQ(parse_error(with_digest(h + "/a/b d 0755 0 0\n")),
              "M line 3: /a/b: parent directory is not in the manifest");
    EXPECT_EQ(parse_error(with_digest(h + "/a f 0644 0 0\n")), "M line 3: /a: size and sha256 required");
    EXPECT_EQ(parse_error(with_digest(h + "/a f 0644 0 0 size=01 sha256=" + kHash + "\n")),
              "M line 3: /a: malformed size");
    EXPECT_EQ(parse_error(with_digest(h + "/a f 0644 0 0 link=/b\n")),
              "M line 3: /a: link to /b, not an earlier entry of the same type");
    EXPECT_EQ(parse_error(with_digest(h + "/a x 0644 0 0\n")), "M line 3: /a: unknown type x");
    EXPECT_EQ(parse_error(with_digest(h + "/a d 755 0 0\n")), "M line 3: /a: malformed mode 755");
    EXPECT_EQ(parse_error(with_digest(h + "/a d 0755 0 0 color=red\n")), "M line 3: /a: unexpected field color");
    EXPECT_EQ(parse_error(with_digest("trustme-manifest v1\n/a d 0755 0 0\n")),
              "M line 2: the first entry must be the rootfs directory /");
    EXPECT_EQ(parse_error(with_digest(h + "config sha256=" + kHash + "\n")),
              "M line 3: config line must come right after the header");
}

TEST(Manifest, CompareNamesTheFirstDifference) {
    Entry root;
    root.path = "/";
    root.type = 'd';
    root.mode = 0755;
    Entry a;
    a.path = "/a";
    a.type = 'f';
    a.mode = 0644;
    a.size = 1;
    a.sha256 = kHash;
    Entry b = a;
    b.path = "/b";
    Entry a2 = a;
    a2.sha256 = std::string(64, 'b');
    Entry b2 = b;
    b2.mode = 0600;
    EXPECT_EQ(compare_entries({root, a, b}, {root, a2, b2}),
              "/a: content changed (SHA-256 differs from the manifest) (and 1 more difference)");
    EXPECT_EQ(compare_entries({root, a}, {root, a, b}), "/b: not in the manifest (added since signing)");
    EXPECT_EQ(compare_entries({root, a, b}, {root, b}), "/a: missing (removed since signing)");
}
