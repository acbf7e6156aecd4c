// Cairo functions called by EarshotPlot, resolved from libcairo.so.2 on first use (see CEarshotLazy.h).
// A cairo_* function the Swift code starts calling must be added here (the link fails until it is).
#include <CCairo.h>
#include "../CEarshotSupport/CEarshotLazy.h"

#define CAIRO_FUNCTIONS(XR, XV) \
    XR(cairo_t *, cairo_create, (cairo_surface_t *target), (target)) \
    XV(void, cairo_destroy, (cairo_t *cr), (cr)) \
    XV(void, cairo_save, (cairo_t *cr), (cr)) \
    XV(void, cairo_restore, (cairo_t *cr), (cr)) \
    XV(void, cairo_set_source_rgb, (cairo_t *cr, double red, double green, double blue), (cr, red, green, blue)) \
    XV(void, cairo_set_source_surface, (cairo_t *cr, cairo_surface_t *surface, double x, double y), (cr, surface, x, y)) \
    XV(void, cairo_set_line_width, (cairo_t *cr, double width), (cr, width)) \
    XV(void, cairo_translate, (cairo_t *cr, double tx, double ty), (cr, tx, ty)) \
    XV(void, cairo_rotate, (cairo_t *cr, double angle), (cr, angle)) \
    XV(void, cairo_move_to, (cairo_t *cr, double x, double y), (cr, x, y)) \
    XV(void, cairo_line_to, (cairo_t *cr, double x, double y), (cr, x, y)) \
    XV(void, cairo_rectangle, (cairo_t *cr, double x, double y, double width, double height), (cr, x, y, width, height)) \
    XV(void, cairo_close_path, (cairo_t *cr), (cr)) \
    XV(void, cairo_paint, (cairo_t *cr), (cr)) \
    XV(void, cairo_stroke, (cairo_t *cr), (cr)) \
    XV(void, cairo_fill, (cairo_t *cr), (cr)) \
    XV(void, cairo_select_font_face, (cairo_t *cr, const char *family, cairo_font_slant_t slant, cairo_font_weight_t weight), (cr, family, slant, weight)) \
    XV(void, cairo_set_font_size, (cairo_t *cr, double size), (cr, size)) \
    XV(void, cairo_show_text, (cairo_t *cr, const char *utf8), (cr, utf8)) \
    XV(void, cairo_text_extents, (cairo_t *cr, const char *utf8, cairo_text_extents_t *extents), (cr, utf8, extents)) \
    XR(const char *, cairo_status_to_string, (cairo_status_t status), (status)) \
    XV(void, cairo_surface_destroy, (cairo_surface_t *surface), (surface)) \
    XR(cairo_status_t, cairo_surface_status, (cairo_surface_t *surface), (surface)) \
    XR(cairo_status_t, cairo_surface_write_to_png, (cairo_surface_t *surface, const char *filename), (surface, filename)) \
    XV(void, cairo_surface_flush, (cairo_surface_t *surface), (surface)) \
    XV(void, cairo_surface_mark_dirty, (cairo_surface_t *surface), (surface)) \
    XR(cairo_surface_t *, cairo_image_surface_create, (cairo_format_t format, int width, int height), (format, width, height)) \
    XR(unsigned char *, cairo_image_surface_get_data, (cairo_surface_t *surface), (surface)) \
    XR(int, cairo_image_surface_get_stride, (cairo_surface_t *surface), (surface)) \

CEARSHOT_LAZY_LIBRARY(CAIRO_FUNCTIONS, "libcairo.so.2", "libcairo2", "earshot spectrogram")

int CEarshot_cairo_load(void) { return CEarshot_lazy_load(&lazy_lib); }
const char *CEarshot_cairo_error(void) { return CEarshot_lazy_error(&lazy_lib); }
