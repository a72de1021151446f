#!/usr/bin/env python3
"""Helpers of tests/reports_chromium.sh (standard library only).

  charts REPORT.html GRID.html BLANK.html   lay every chart of the report out on a grid page
                                            (one 640x300 cell each) and the same grid with every
                                            chart emptied (only its frame); prints the chart count
  strip REPORT.html OUT.html                the report with every chart removed
  colour PNG [CELLS]                        coloured pixels (the charts' palette, not greys) of a
                                            screenshot: in total, or per grid cell when CELLS is given
  requests NETLOG.json                      URLs the page itself requested (not the browser's own
                                            background services), one a line
"""
import json
import re
import struct
import sys
import zlib

CHART = re.compile(r'<svg class="chart".*?</svg>', re.S)
CELL_W, CELL_H, COLS = 660, 320, 2


def charts(report, grid, blank):
    svgs = CHART.findall(open(report, encoding="utf-8").read())

    def page(items):
        cells = []
        for i, svg in enumerate(items):
            x, y = (i % COLS) * CELL_W, (i // COLS) * CELL_H
            cells.append(f'<div style="position:absolute;left:{x}px;top:{y}px;width:640px;height:300px;overflow:hidden">'
                         + re.sub(r'width="\d+" height="\d+"', 'width="640" height="300" preserveAspectRatio="none"', svg, 1)
                         + "</div>")
        return '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body style="margin:0;background:#fff">' + "".join(cells) + "</body></html>"

    open(grid, "w", encoding="utf-8").write(page(svgs))
    emptied = [re.sub(r"(<svg[^>]*>).*(</svg>)", r'\1<rect x="0" y="0" width="640" height="300" fill="#fff"/>\2', s, flags=re.S) for s in svgs]
    open(blank, "w", encoding="utf-8").write(page(emptied))
    print(len(svgs))


def strip(report, out):
    open(out, "w", encoding="utf-8").write(CHART.sub("", open(report, encoding="utf-8").read()))


def png_pixels(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0, "unsupported PNG layout"
            bpp = 4 if ctype == 6 else 3
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def colour(png, cells=None):
    width, height, bpp, rows = png_pixels(png)

    def coloured(x0, y0, x1, y1):
        n = 0
        for y in range(y0, min(y1, height)):
            r = rows[y]
            for x in range(x0, min(x1, width)):
                px = r[x * bpp:x * bpp + 3]
                if max(px) - min(px) > 60:
                    n += 1
        return n

    if cells is None:
        print(coloured(0, 0, width, height))
        return
    for i in range(int(cells)):
        x, y = (i % COLS) * CELL_W, (i // COLS) * CELL_H
        print(coloured(x, y, x + 640, y + 300))


def requests(netlog):
    log = json.load(open(netlog, encoding="utf-8"))
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    seen = set()
    for e in log.get("events", []):
        p = e.get("params") or {}
        if names.get(e.get("type")) != "URL_REQUEST_START_JOB" or "url" not in p:
            continue
        # Requests of the page carry its origin (file:// pages: "null") and its
        # site in the isolation key; the browser's own services carry neither.
        if p.get("initiator") == "not an origin" and "file://" not in p.get("network_isolation_key", ""):
            continue
        if p["url"].startswith(("file:", "data:")):
            continue
        seen.add(p["url"])
    for url in sorted(seen):
        print(url)


if __name__ == "__main__":
    {"charts": charts, "strip": strip, "colour": colour, "requests": requests}[sys.argv[1]](*sys.argv[2:])
