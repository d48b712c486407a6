/**
 * When enough people have approved. Two shapes of review:
 *  - `any`: N distinct people, each a member of at least one of the reviewer groups;
 *  - `each`: one distinct person per group (and at least N people in all). A person in two
 *    groups fills one of them, never both: the votes are matched to groups, each vote once
 *    (a maximum bipartite matching, Kuhn's augmenting paths; groups and votes are few).
 * Votes are one per person by construction (the store keys them by request and name).
 */
import type { ApprovalRequest, ApprovalVote } from './request.ts';

export type ReviewFrom = 'any' | 'each';

export function reviewFrom(request: Pick<ApprovalRequest, 'review'>): ReviewFrom {
  return request.review.from ?? 'any';
}

/** Groups still missing an approver under `each` (empty for `any`). */
export function unfilledGroups(groups: readonly string[], votes: readonly ApprovalVote[]): string[] {
  const owner = new Map<number, string>(); // vote index → group it fills
  const tryAssign = (group: string, seen: Set<number>): boolean => {
    for (let i = 0; i < votes.length; i++) {
      if (seen.has(i) || !(votes[i]!.groups ?? []).includes(group)) continue;
      seen.add(i);
      const current = owner.get(i);
      if (current === undefined || tryAssign(current, seen)) {
        owner.set(i, group);
        return true;
      }
    }
    return false;
  };
  return [...new Set(groups)].filter((g) => !tryAssign(g, new Set()));
}

export function quorumMet(request: Pick<ApprovalRequest, 'review' | 'approvals'>): boolean {
  if (request.approvals.length < request.review.approvals) return false;
  if (reviewFrom(request) === 'each')
    return unfilledGroups(request.review.groups, request.approvals).length === 0;
  return true;
}
