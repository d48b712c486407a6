/**
 * Every pending request in the store, newest first, read a page at a time so a large backlog
 * (a long outage of reviewers, say) never has to sit in memory at once.
 */
import type { Store } from '../store.ts';
import type { ApprovalRequest } from './request.ts';

const PAGE = 500;

export async function* pendingRequests(
  store: Pick<Store, 'listRequests'>,
  pageSize = PAGE,
): AsyncGenerator<ApprovalRequest> {
  let beforeId: number | undefined;
  for (;;) {
    const page = await store.listRequests({
      status: ['pending'],
      limit: pageSize,
      ...(beforeId === undefined ? {} : { beforeId }),
    });
    yield* page;
    if (page.length < pageSize) return;
    beforeId = page[page.length - 1]!.id;
  }
}
