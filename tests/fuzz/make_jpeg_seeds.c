/* Writes tiny JPEG seeds with libjpeg (compiled and run by make_seeds.py):
 *   make_jpeg_seeds OUTDIR
 * baseline.jpg (4×3 RGB), progressive.jpg, gray.jpg, orientation6.jpg (an EXIF
 * APP1 with orientation 6), cmyk.jpg (Adobe CMYK), restart.jpg (restart markers,
 * 4:2:0 subsampling, 17×9 so the MCUs are partial). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

static void write_jpeg(const char* dir, const char* name, int w, int h, int components,
                       J_COLOR_SPACE space, int progressive, int orientation, int restart) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE* f = fopen(path, "wb");
    if (!f) { perror(path); exit(1); }
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = components;
    c.in_color_space = space;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 75, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    if (restart) c.restart_interval = 1;
    jpeg_start_compress(&c, TRUE);
    if (orientation) {
        /* "Exif\0\0", TIFF little-endian header, IFD0 with one entry: 0x0112 SHORT 1 value. */
        unsigned char exif[] = {'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0,
                                0x12, 0x01, 3, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        exif[22] = (unsigned char)orientation;
        jpeg_write_marker(&c, JPEG_APP0 + 1, exif, sizeof exif);
    }
    unsigned char row[64 * 4];
    for (int y = 0; y < h; ++y) {
        for (int i = 0; i < w * components; ++i) row[i] = (unsigned char)(37 * y + 11 * i);
        JSAMPROW rows[1] = {row};
        jpeg_write_scanlines(&c, rows, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
}

int main(int argc, char** argv) {
    if (argc != 2) { fprintf(stderr, "usage: make_jpeg_seeds OUTDIR\n"); return 2; }
    write_jpeg(argv[1], "baseline.jpg", 4, 3, 3, JCS_RGB, 0, 0, 0);
    write_jpeg(argv[1], "progressive.jpg", 4, 3, 3, JCS_RGB, 1, 0, 0);
    write_jpeg(argv[1], "gray.jpg", 3, 2, 1, JCS_GRAYSCALE, 0, 0, 0);
    write_jpeg(argv[1], "orientation6.jpg", 4, 3, 3, JCS_RGB, 0, 6, 0);
    write_jpeg(argv[1], "cmyk.jpg", 3, 2, 4, JCS_CMYK, 0, 0, 0);
    write_jpeg(argv[1], "restart.jpg", 17, 9, 3, JCS_RGB, 0, 0, 1);
    return 0;
}
