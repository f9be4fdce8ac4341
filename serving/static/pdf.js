// SFAI console: a minimal PDF writer (no library, no outside hosts). canvasToPdf(canvas, {title}) returns a
// one-page PDF Blob with the canvas as an image XObject, fitted onto an A4 page (landscape for wide images):
// lossless Flate-compressed RGB where the browser has CompressionStream, else JPEG (DCT).
"use strict";

const PDF_A4 = [595.28, 841.89]; // points

function pdfAscii(s) {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

// A PDF text string in UTF-16BE with a byte-order mark, as hex: any script (Korean) in the document info.
function pdfText(s) {
  let hex = "FEFF";
  for (const ch of String(s)) {
    const cp = ch.codePointAt(0);
    const units = cp > 0xffff ? [0xd800 + ((cp - 0x10000) >> 10), 0xdc00 + ((cp - 0x10000) & 0x3ff)] : [cp];
    for (const u of units) hex += u.toString(16).toUpperCase().padStart(4, "0");
  }
  return `<${hex}>`;
}

function pdfDate(d) {
  const p = (n) => String(n).padStart(2, "0");
  return `(D:${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z)`;
}

async function pdfImage(canvas) {
  const w = canvas.width;
  const h = canvas.height;
  if (typeof CompressionStream === "function") {
    const rgba = canvas.getContext("2d").getImageData(0, 0, w, h).data;
    const rgb = new Uint8Array(w * h * 3);
    for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
      rgb[j] = rgba[i]; rgb[j + 1] = rgba[i + 1]; rgb[j + 2] = rgba[i + 2];
    }
    const stream = new Blob([rgb]).stream().pipeThrough(new CompressionStream("deflate")); // zlib: FlateDecode
    return { w, h, filter: "FlateDecode", bytes: new Uint8Array(await new Response(stream).arrayBuffer()) };
  }
  const blob = await new Promise((resolve, reject) => canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("cannot encode the chart"))), "image/jpeg", 0.92));
  return { w, h, filter: "DCTDecode", bytes: new Uint8Array(await blob.arrayBuffer()) };
}

async function canvasToPdf(canvas, { title = "", margin = 24 } = {}) {
  const img = await pdfImage(canvas);
  const [pw, ph] = img.w >= img.h ? [PDF_A4[1], PDF_A4[0]] : PDF_A4;
  const s = Math.min((pw - 2 * margin) / img.w, (ph - 2 * margin) / img.h);
  const dw = img.w * s;
  const dh = img.h * s;
  const x = (pw - dw) / 2;
  const y = ph - margin - dh; // top-aligned
  const n = (v) => v.toFixed(2);
  const content = `q ${n(dw)} 0 0 ${n(dh)} ${n(x)} ${n(y)} cm /Im0 Do Q\n`;

  const parts = [];
  const offsets = [];
  let length = 0;
  const push = (chunk) => { const b = typeof chunk === "string" ? pdfAscii(chunk) : chunk; parts.push(b); length += b.length; };
  const obj = (num, body, stream) => {
    offsets[num] = length;
    push(`${num} 0 obj\n${body}\n`);
    if (stream) { push("stream\n"); push(stream); push("\nendstream\n"); }
    push("endobj\n");
  };
  push("%PDF-1.4\n%\u00e2\u00e3\u00cf\u00d3\n");
  obj(1, "<< /Type /Catalog /Pages 2 0 R >>");
  obj(2, "<< /Type /Pages /Kids [3 0 R] /Count 1 >>");
  obj(3, `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 ${n(pw)} ${n(ph)}] /Resources << /XObject << /Im0 5 0 R >> >> /Contents 4 0 R >>`);
  obj(4, `<< /Length ${content.length} >>`, pdfAscii(content));
  obj(5, `<< /Type /XObject /Subtype /Image /Width ${img.w} /Height ${img.h} /ColorSpace /DeviceRGB /BitsPerComponent 8 ` +
    `/Filter /${img.filter} /Length ${img.bytes.length} >>`, img.bytes);
  obj(6, `<< /Title ${pdfText(title)} /Producer (SFAI console) /CreationDate ${pdfDate(new Date())} >>`);
  const xref = length;
  push(`xref\n0 7\n0000000000 65535 f \n${offsets.slice(1).map((o) => `${String(o).padStart(10, "0")} 00000 n \n`).join("")}`);
  push(`trailer\n<< /Size 7 /Root 1 0 R /Info 6 0 R >>\nstartxref\n${xref}\n%%EOF\n`);
  return new Blob(parts, { type: "application/pdf" });
}
