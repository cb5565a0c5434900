// `trustme-sign sign --image` on this host, which has no device-mapper: the image and its manifest are
// made and cross-checked with cryptsetup's own veritysetup; a start refuses with one line and leaves
// nothing behind. The VM runs the image (test_vm_image.cpp).
#include "tests/signing/image_fixture.hpp"

using namespace imagetest;

TEST_F(ImageBundle, SignImageRecordsTheRootHashVeritysetupAgrees) {
    make_signed();
    auto im = signed_image();
    EXPECT_EQ(im.file, "rootfs.img");
    EXPECT_EQ(im.fstype, "ext4");
    struct stat st {};
    ASSERT_EQ(::stat(image.c_str(), &st), 0);
    EXPECT_EQ(static_cast<uint64_t>(st.st_size), im.size);
    EXPECT_EQ(im.hash_offset, im.data_blocks * 4096);
    EXPECT_EQ(run({"sha256sum", image}).out.substr(0, 64), im.sha256);
    // cryptsetup's veritysetup reads every block and checks it against our root hash and salt.
    Result v = run({"veritysetup", "verify", "--no-superblock", "--hash-offset=" + std::to_string(im.hash_offset),
                    "--data-blocks=" + std::to_string(im.data_blocks), "--salt=" + im.salt, image, image, im.root});
    EXPECT_EQ(v.status, 0) << v.err;
    // The ext4 inside holds the rootfs as it was.
    Result d = run({"debugfs", "-R", "cat /data/pattern", image});
    EXPECT_EQ(d.out, slurp(rootfs + "/data/pattern"));
    // The manifest carries no entries; trustme-sign verify accepts it (the rootfs directory is not walked).
    Result ok = run({kBin + "trustme-sign", "verify", "--policy", policy, bundle});
    EXPECT_EQ(ok.status, 0) << ok.err;
    // An image of another size than the signed one is refused by name.
    ASSERT_EQ(::truncate(image.c_str(), static_cast<off_t>(im.size + 4096)), 0);
    Result bad = run({kBin + "trustme-sign", "verify", "--policy", policy, bundle});
    EXPECT_EQ(bad.status, 1);
    EXPECT_EQ(bad.err, "trustme-sign: " + image + ": " + std::to_string(im.size + 4096) + " bytes, the manifest says " +
                           std::to_string(im.size) + "\n");
}

TEST_F(ImageBundle, WithoutDeviceMapperAStartIsOneLineAndLeavesNothing) {
    if (vol::dm_available()) GTEST_SKIP() << "this kernel has device-mapper (the VM test runs the image)";
    make_signed();
    for (int i = 0; i < 2; ++i) {  // cold (the plugin verifies), then warm (from the caches)
        Result r = runtime({"run", "-b", bundle, "img"});
        EXPECT_EQ(r.status, 1);
        EXPECT_EQ(r.err, "trustme-runtime: rootfs image " + image +
                             ": dm-verity needs device-mapper, which this kernel does not have\n");
        expect_nothing_left("img");
    }
}

TEST(ImageManifest, ImageLineRoundTripsAndRefusesWhatRenderWouldNotWrite) {
    using namespace trustme::signing;
    Image im;
    im.file = "rootfs.img";
    im.size = 10 * 4096 + 4096;
    im.sha256 = std::string(64, 'a');
    im.fstype = "ext4";
    im.data_blocks = 10;
    im.hash_offset = 10 * 4096;
    im.salt = std::string(64, 'b');
    im.root = std::string(64, 'c');
    std::string line = render_image(im);
    std::string why;
    auto back = parse_image_line(line, &why);
    ASSERT_TRUE(back) << why;
    EXPECT_EQ(render_image(*back), line);
    Manifest m;
    m.config_sha256 = std::string(64, 'd');
    m.image = im;
    EXPECT_EQ(render(parse_manifest(render(m), "m")), render(m));
    for (auto [from, to] : {std::pair{"rootfs.img", "../x.img"},
                            {"hash_offset=40960", "hash_offset=4096"},
                            {"fstype=ext4", "fstype=vfat"},
                            {"block=4096", "block=8192"},
                            {" root=", " rooot="}}) {
        std::string l = line;
        l.replace(l.find(from), std::string(from).size(), to);
        EXPECT_FALSE(parse_image_line(l, &why)) << l;
    }
    // Entries next to an image, or an image without a config line: refused.
    std::string with_entry = render(m);
    with_entry.insert(with_entry.find("digest "), "/ d 0755 0 0\n");
    EXPECT_THROW(parse_manifest(with_entry, "m"), std::exception);
}
