// Number, size and time formatting for the tables.

const intFmt = new Intl.NumberFormat('en-US');

export function fmtInt(n) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return '–';
  return intFmt.format(Number(n));
}

/** Per-second rates: one decimal under 100, whole numbers above. */
export function fmtRate(n) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return '–';
  const v = Number(n);
  if (v === 0) return '0';
  return v < 100 ? v.toFixed(1) : intFmt.format(Math.round(v));
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '–';
  let v = Number(n);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v < 10 && i > 0 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** Seconds as "45s", "3m 12s", "2h 5m", "3d 4h". */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(Number(seconds))) return '–';
  let s = Math.max(0, Math.floor(Number(seconds)));
  if (s < 60) return `${s}s`;
  const d = Math.floor(s / 86400); s -= d * 86400;
  const hr = Math.floor(s / 3600); s -= hr * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d > 0) return `${d}d ${hr}h`;
  if (hr > 0) return `${hr}h ${m}m`;
  return `${m}m ${s}s`;
}

/** A job's ctime (SHOW: milliseconds * 1e6 + a counter, as a number or a string) in milliseconds. */
export function ctimeMs(ctime) {
  if (ctime === null || ctime === undefined) return null;
  const s = String(ctime);
  if (!/^\d+$/.test(s)) return null;
  return s.length > 13 ? Number(s.slice(0, s.length - 6)) : Number(s);
}

export function fmtTime(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '–';
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** "3m 12s ago" from a time in milliseconds. */
export function fmtAgo(ms) {
  if (ms === null || ms === undefined) return '–';
  return `${fmtDuration((Date.now() - ms) / 1000)} ago`;
}

export function shortId(id) {
  return typeof id === 'string' ? id.slice(0, 8) : '';
}
