import type { ActionKind, AirlockRequest } from './types.ts';

/** Mirrors KIND_RISK in src/core/action.ts (a test keeps the two equal). */
export const KIND_RISK: Record<ActionKind, number> = {
  read: 0,
  transfer: 1,
  session: 2,
  exec: 3,
  write: 3,
  schema: 4,
  privilege: 5,
  admin: 6,
  unknown: 6,
};

/** Inbox order: riskiest kind first, then whoever has waited longest. */
export function byRisk(a: AirlockRequest, b: AirlockRequest): number {
  const r = (KIND_RISK[b.kind] ?? 6) - (KIND_RISK[a.kind] ?? 6);
  if (r !== 0) return r;
  const t = Date.parse(a.createdAt) - Date.parse(b.createdAt);
  return t !== 0 ? t : a.id - b.id;
}

export const PRINCIPAL_KIND_LABEL: Record<string, string> = { human: 'human', service: 'CI', agent: 'agent' };

/** "42s", "3m 05s", "2h 10m", "3d 4h". */
export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

export function when(iso: string | null): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}
