#include <math.h>
#include <string.h>

#include "phi.h"

static void
push(struct phi *p, uint64_t gap)
{
	if (p->n == PHI_WINDOW) {	/* the oldest goes */
		p->head = (p->head + 1) % PHI_WINDOW;
		p->n--;
	}
	p->gap[(p->head + p->n) % PHI_WINDOW] = gap;
	p->n++;
}

void
phi_init(struct phi *p, double interval, double now)
{
	memset(p, 0, sizeof *p);
	p->interval = interval;
	p->last = now;
	push(p, (uint64_t)(interval * 1e6));
}

void
phi_add(struct phi *p, double now)
{
	double gap = (now - p->last) * 1e6;

	if (p->n == 0)
		push(p, (uint64_t)(p->interval * 1e6));
	else
		push(p, gap > 0 ? (uint64_t)gap : 0);
	p->last = now;
}

double
phi_value(const struct phi *p, double now)
{
	uint64_t sum = 0, wsum = 0, mean_us;
	double mean, t;
	size_t i;

	if (p->n == 0)
		return 0;
	for (i = 0; i < p->n; i++) {
		sum += p->gap[(p->head + i) % PHI_WINDOW] * (i + 1);
		wsum += i + 1;
	}
	mean_us = sum / wsum;
	mean = (double)mean_us / 1e6 - p->interval + 1;
	t = now - p->last - p->interval + 1;
	return t / (mean * log(10));
}

void
phi_clear(struct phi *p)
{
	p->head = p->n = 0;
}

size_t
phi_samples(const struct phi *p)
{
	return p->n;
}
