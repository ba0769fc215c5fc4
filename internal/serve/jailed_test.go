package serve

import "testing"

// A jail gets whole unikernels (each prepared once, however many of its
// instances it runs), never more than per instances, and the jails cover
// the batch's instances once each, in order.
func TestJailsHoldAtMostPerInstancesOfWholeUnikernelsAndCoverTheBatchOnce(t *testing.T) {
	for _, c := range []struct{ units, n, per, jails int }{
		{20, 10, 50, 4}, // 5 unikernels x 10 a jail
		{20, 10, 45, 5}, // 4 x 10: never 45 instances of 5 unikernels' parts
		{9, 1112, 1000, 18},
		{3, 1, 1, 3},
		{1, 7, 7, 1},
		{7, 3, 100, 1},
	} {
		js := jailSlices(c.units, c.n, c.per)
		if len(js) != c.jails {
			t.Errorf("%+v: %d jails, want %d: %+v", c, len(js), c.jails, js)
		}
		next := 0
		for _, j := range js {
			if j.lo != next || j.hi-j.lo > c.per || j.hi-j.lo != (j.u1-j.u0)*j.n || j.n < 1 {
				t.Fatalf("%+v: jail %+v after instance %d", c, j, next)
			}
			// Instance i of the batch is unikernel i/n's: the jail's
			// unikernels are exactly those of its instances.
			if j.u0 != j.lo/c.n || j.u1 != (j.hi-1)/c.n+1 {
				t.Fatalf("%+v: jail %+v holds unikernels other than its instances'", c, j)
			}
			next = j.hi
		}
		if next != c.units*c.n {
			t.Errorf("%+v: jails cover %d instances, want %d", c, next, c.units*c.n)
		}
	}
}
