/* SVG charts drawn by the project for the HTML report: line charts (ROC,
 * TPR against length), grouped histograms (p-values on a log axis), bars
 * with intervals (quality cost, speed ratios, hallucination scores) and a
 * heat map (robustness). Each chart is one inline <svg role="img"> with a
 * <title> (its alt text), plain shapes and system fonts, so it needs no
 * script, font or network; colours are the Okabe-Ito set, which stays
 * legible to colour-blind readers and in greyscale print with the markers.
 * It must never emit a number or label unescaped, nor NaN coordinates. */
#include "reports_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { W = 700, H = 300, ML = 64, MR = 190, MT = 34, MB = 48 };
static const char *const palette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00",
                                      "#56B4E9", "#000000", "#F0E442"};
static const char *const dashes[] = {"", "6 3", "2 2", "8 3 2 3", "1 3", "10 4", "4 4", "12 2"};

static const char *colour(size_t i) { return palette[i % (sizeof palette / sizeof *palette)]; }
static const char *dash(size_t i) { return dashes[(i / (sizeof palette / sizeof *palette) + i) % 8]; }

static void open_svg_wide(tm_buffer *b, const char *title, const char *alt, int width, int height) {
    tm_buffer_printf(b, "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" width=\"%d\" "
                 "height=\"%d\" role=\"img\" aria-label=\"",
              width, height, width, height);
    rb_html(b, alt);
    tm_buffer_puts(b, "\"><title>");
    rb_html(b, alt);
    tm_buffer_printf(b, "</title><rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#fff\"/>", width, height);
    tm_buffer_printf(b, "<text x=\"%d\" y=\"20\" font-size=\"14\" font-weight=\"bold\">", ML);
    rb_html(b, title);
    tm_buffer_puts(b, "</text>");
}

static void open_svg(tm_buffer *b, const char *title, const char *alt, int height) { open_svg_wide(b, title, alt, W, height); }

static double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

static void axes(tm_buffer *b, const char *xlabel, const char *ylabel, double xmin, double xmax, double ymin,
                 double ymax, bool log_x) {
    int x0 = ML, x1 = W - MR, y0 = H - MB, y1 = MT;
    tm_buffer_printf(b, "<g font-size=\"11\" fill=\"#222\"><path d=\"M%d %d H%d M%d %d V%d\" stroke=\"#222\" fill=\"none\"/>",
              x0, y0, x1, x0, y0, y1);
    for (int i = 0; i <= 4; i++) {
        double f = i / 4.0;
        double xv = log_x ? pow(10, log10(xmin) + f * (log10(xmax) - log10(xmin))) : xmin + f * (xmax - xmin);
        double yv = ymin + f * (ymax - ymin);
        double px = x0 + f * (x1 - x0), py = y0 - f * (y0 - y1);
        char t[32];
        fmt_num(t, sizeof t, xv);
        tm_buffer_printf(b, "<path d=\"M%.1f %d v4\" stroke=\"#222\"/><text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>",
                  px, y0, px, y0 + 16, t);
        fmt_num(t, sizeof t, yv);
        tm_buffer_printf(b, "<path d=\"M%d %.1f h-4\" stroke=\"#222\"/><path d=\"M%d %.1f H%d\" stroke=\"#ddd\"/>"
                     "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>",
                  x0, py, x0 + 1, py, x1, x0 - 6, py + 4, t);
    }
    tm_buffer_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", (x0 + x1) / 2, H - 10);
    rb_html(b, xlabel);
    tm_buffer_printf(b, "</text><text transform=\"translate(14 %d) rotate(-90)\" text-anchor=\"middle\">", (y0 + y1) / 2);
    rb_html(b, ylabel);
    tm_buffer_puts(b, "</text></g>");
}

static void legend(tm_buffer *b, const tm_series *series, size_t n, bool bars) {
    int x = W - MR + 12;
    for (size_t i = 0; i < n && i < 14; i++) {
        int y = MT + 6 + (int)i * 17;
        if (bars)
            tm_buffer_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"10\" fill=\"%s\"/>", x, y - 8, colour(i));
        else
            tm_buffer_printf(b, "<path d=\"M%d %d h18\" stroke=\"%s\" stroke-width=\"2.5\" stroke-dasharray=\"%s\"/>", x,
                      y - 3, colour(i), dash(i));
        tm_buffer_printf(b, "<text x=\"%d\" y=\"%d\" font-size=\"11\">", x + 22, y);
        rb_html(b, series[i].name);
        tm_buffer_puts(b, "</text>");
    }
    if (n > 14) tm_buffer_printf(b, "<text x=\"%d\" y=\"%d\" font-size=\"11\">… %zu more</text>", x, MT + 6 + 14 * 17, n - 14);
}

void svg_lines(tm_buffer *b, const char *title, const char *alt, const char *xlabel, const char *ylabel,
               const tm_series *series, size_t n_series, double xmin, double xmax, double ymin, double ymax,
               bool diagonal) {
    open_svg(b, title, alt, H);
    if (!(xmax > xmin)) xmax = xmin + 1;
    if (!(ymax > ymin)) ymax = ymin + 1;
    axes(b, xlabel, ylabel, xmin, xmax, ymin, ymax, false);
    double sx = (double)(W - MR - ML) / (xmax - xmin), sy = (double)(H - MB - MT) / (ymax - ymin);
#define PX(v) (ML + (clampd(v, xmin, xmax) - xmin) * sx)
#define PY(v) (H - MB - (clampd(v, ymin, ymax) - ymin) * sy)
    if (diagonal)
        tm_buffer_printf(b, "<path d=\"M%.1f %.1f L%.1f %.1f\" stroke=\"#999\" stroke-dasharray=\"3 3\" fill=\"none\"/>",
                  PX(xmin), PY(ymin), PX(xmax), PY(ymax));
    for (size_t s = 0; s < n_series; s++) {
        const tm_series *se = &series[s];
        bool pen = false;
        tm_buffer_puts(b, "<path d=\"");
        for (size_t i = 0; i < se->n; i++) {
            if (!isfinite(se->x[i]) || !isfinite(se->y[i])) { pen = false; continue; }
            tm_buffer_printf(b, "%c%.1f %.1f ", pen ? 'L' : 'M', PX(se->x[i]), PY(se->y[i]));
            pen = true;
        }
        tm_buffer_printf(b, "\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" stroke-dasharray=\"%s\"/>", colour(s), dash(s));
        for (size_t i = 0; i < se->n; i++) {
            if (!isfinite(se->x[i]) || !isfinite(se->y[i])) continue;
            if (se->low && se->high && isfinite(se->low[i]) && isfinite(se->high[i]))
                tm_buffer_printf(b, "<path d=\"M%.1f %.1f V%.1f\" stroke=\"%s\"/>", PX(se->x[i]), PY(se->low[i]),
                          PY(se->high[i]), colour(s));
            if (se->n <= 40)
                tm_buffer_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>", PX(se->x[i]), PY(se->y[i]),
                          colour(s));
        }
    }
#undef PX
#undef PY
    legend(b, series, n_series, false);
    tm_buffer_puts(b, "</svg>");
}

void svg_histogram(tm_buffer *b, const char *title, const char *alt, const char *xlabel, const char *const *bin_labels,
                   size_t n_bins, const tm_series *series, size_t n_series) {
    open_svg(b, title, alt, H);
    double ymax = 0;
    for (size_t s = 0; s < n_series; s++)
        for (size_t i = 0; i < series[s].n; i++)
            if (isfinite(series[s].y[i]) && series[s].y[i] > ymax) ymax = series[s].y[i];
    if (ymax <= 0) ymax = 1;
    int x0 = ML, x1 = W - MR, y0 = H - MB, y1 = MT;
    tm_buffer_printf(b, "<g font-size=\"11\"><path d=\"M%d %d H%d M%d %d V%d\" stroke=\"#222\" fill=\"none\"/>", x0, y0, x1,
              x0, y0, y1);
    for (int i = 0; i <= 4; i++) {
        double py = y0 - i / 4.0 * (y0 - y1);
        char t[32];
        fmt_num(t, sizeof t, ymax * i / 4.0);
        tm_buffer_printf(b, "<path d=\"M%d %.1f H%d\" stroke=\"#ddd\"/><text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>",
                  x0 + 1, py, x1, x0 - 6, py + 4, t);
    }
    double bw = n_bins ? (double)(x1 - x0) / (double)n_bins : 1;
    for (size_t i = 0; i < n_bins; i++) {
        tm_buffer_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", x0 + (i + 0.5) * bw, y0 + 16);
        rb_html(b, bin_labels[i]);
        tm_buffer_puts(b, "</text>");
        for (size_t s = 0; s < n_series; s++) {
            if (i >= series[s].n || !isfinite(series[s].y[i])) continue;
            double inner = bw * 0.8 / (double)(n_series ? n_series : 1);
            double h = series[s].y[i] / ymax * (y0 - y1);
            tm_buffer_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>",
                      x0 + i * bw + bw * 0.1 + (double)s * inner, y0 - h, inner, h, colour(s));
        }
    }
    tm_buffer_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", (x0 + x1) / 2, H - 10);
    rb_html(b, xlabel);
    tm_buffer_printf(b, "</text><text transform=\"translate(14 %d) rotate(-90)\" text-anchor=\"middle\">share of texts</text></g>",
              (y0 + y1) / 2);
    legend(b, series, n_series, true);
    tm_buffer_puts(b, "</svg>");
}

void svg_bars(tm_buffer *b, const char *title, const char *alt, const char *xlabel, const char *const *labels,
              const double *values, const double *low, const double *high, size_t n, double xmin, double xmax,
              double ref) {
    int row = 22, height = MT + MB + (int)(n ? n : 1) * row;
    open_svg(b, title, alt, height);
    if (!(xmax > xmin)) xmax = xmin + 1;
    int lx = 200, x1 = W - 30, y0 = height - MB;
    double sx = (x1 - lx) / (xmax - xmin);
#define BX(v) (lx + (clampd(v, xmin, xmax) - xmin) * sx)
    tm_buffer_printf(b, "<g font-size=\"11\"><path d=\"M%d %d H%d M%d %d V%d\" stroke=\"#222\" fill=\"none\"/>", lx, y0, x1,
              lx, y0, MT);
    for (int i = 0; i <= 4; i++) {
        double v = xmin + i / 4.0 * (xmax - xmin);
        char t[32];
        fmt_num(t, sizeof t, v);
        tm_buffer_printf(b, "<path d=\"M%.1f %d V%d\" stroke=\"#ddd\"/><text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>",
                  BX(v), y0, MT, BX(v), y0 + 16, t);
    }
    for (size_t i = 0; i < n; i++) {
        double cy = MT + (double)i * row + row / 2.0;
        tm_buffer_printf(b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">", lx - 6, cy + 4);
        rb_html(b, labels[i]);
        tm_buffer_puts(b, "</text>");
        if (!isfinite(values[i])) {
            tm_buffer_printf(b, "<text x=\"%d\" y=\"%.1f\" fill=\"#777\">not measured</text>", lx + 4, cy + 4);
            continue;
        }
        double base = clampd(0, xmin, xmax);
        double a = BX(base), c = BX(values[i]);
        tm_buffer_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>", a < c ? a : c,
                  cy - row * 0.35, fabs(c - a) < 1 ? 1 : fabs(c - a), (int)(row * 0.7), colour(0));
        if (low && high && isfinite(low[i]) && isfinite(high[i]))
            tm_buffer_printf(b, "<path d=\"M%.1f %.1f H%.1f M%.1f %.1f v8 M%.1f %.1f v8\" stroke=\"#000\"/>", BX(low[i]), cy,
                      BX(high[i]), BX(low[i]), cy - 4, BX(high[i]), cy - 4);
    }
    if (isfinite(ref))
        tm_buffer_printf(b, "<path d=\"M%.1f %d V%d\" stroke=\"#D55E00\" stroke-width=\"2\" stroke-dasharray=\"5 3\"/>", BX(ref),
                  y0, MT);
#undef BX
    tm_buffer_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", (lx + x1) / 2, height - 10);
    rb_html(b, xlabel);
    tm_buffer_puts(b, "</text></g></svg>");
}

void svg_heatmap(tm_buffer *b, const char *title, const char *alt, const char *const *row_labels, size_t rows,
                 const char *const *col_labels, size_t cols, const double *values) {
    /* cells at least 44 px wide: many attacks make a wider chart (scaled to the page by CSS) */
    int lx = 130, top = 110, cw = cols ? (W - lx - 20) / (int)cols : 1, ch = 26;
    if (cw > 90) cw = 90;
    if (cw < 44) cw = 44;
    int width = lx + (int)cols * cw + 90; /* room for the last rotated label */
    if (width < W) width = W;
    int height = top + (int)rows * ch + 20;
    open_svg_wide(b, title, alt, width, height);
    tm_buffer_puts(b, "<g font-size=\"11\">");
    for (size_t j = 0; j < cols; j++) {
        tm_buffer_printf(b, "<text transform=\"translate(%d %d) rotate(-40)\">", lx + (int)j * cw + cw / 2, top - 6);
        rb_html(b, col_labels[j]);
        tm_buffer_puts(b, "</text>");
    }
    for (size_t i = 0; i < rows; i++) {
        int y = top + (int)i * ch;
        tm_buffer_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", lx - 6, y + ch / 2 + 4);
        rb_html(b, row_labels[i]);
        tm_buffer_puts(b, "</text>");
        for (size_t j = 0; j < cols; j++) {
            double v = values[i * cols + j];
            char fill[16] = "#cccccc", t[32];
            if (isfinite(v)) {
                /* white (0) to the palette's blue (1): readable text on both ends */
                double f = clampd(v, 0, 1);
                snprintf(fill, sizeof fill, "#%02x%02x%02x", (int)(255 - f * 255), (int)(255 - f * (255 - 114)),
                         (int)(255 - f * (255 - 178)));
            }
            fmt_num(t, sizeof t, v);
            tm_buffer_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\" stroke=\"#fff\"/>"
                         "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"%s\">%s</text>",
                      lx + (int)j * cw, y, cw, ch, fill, lx + (int)j * cw + cw / 2, y + ch / 2 + 4,
                      isfinite(v) && v > 0.55 ? "#fff" : "#000", t);
        }
    }
    tm_buffer_puts(b, "</g></svg>");
}
