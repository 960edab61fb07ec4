package deadline

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

func passed(d *Deadline) bool {
	select {
	case <-d.Wait():
		return true
	default:
		return false
	}
}

func TestDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := New()
		require.False(t, passed(d))
		d.Set(time.Now().Add(time.Second))
		ch := d.Wait()
		time.Sleep(999 * time.Millisecond)
		require.False(t, passed(d))
		time.Sleep(2 * time.Millisecond)
		require.True(t, passed(d))
		<-ch

		d.Set(time.Time{})
		require.False(t, passed(d), "cleared")
		require.False(t, d.Passed())
		d.Set(time.Now().Add(-time.Second))
		require.True(t, passed(d), "in the past")
		require.True(t, d.Passed())

		// Re-armed while a waiter holds the old channel: extending works.
		d.Set(time.Now().Add(time.Second))
		d.Set(time.Now().Add(3 * time.Second))
		time.Sleep(2 * time.Second)
		require.False(t, passed(d))
		time.Sleep(2 * time.Second)
		require.True(t, passed(d))
	})
}

func TestDeadlineStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := New()
		d.Set(time.Now().Add(time.Second))
		d.Stop()
		time.Sleep(2 * time.Second)
		require.False(t, passed(d), "a stopped deadline passed")
		d.Set(time.Now().Add(-time.Second))
		require.False(t, passed(d), "Set after Stop took effect")

		// A deadline that had passed stays passed.
		d = New()
		d.Set(time.Now().Add(-time.Second))
		d.Stop()
		require.True(t, passed(d))
	})
}

func TestDeadlineWhen(t *testing.T) {
	d := New()
	require.True(t, d.When().IsZero())
	at := time.Now().Add(time.Hour)
	d.Set(at)
	require.Equal(t, at, d.When())
	d.Set(time.Time{})
	require.True(t, d.When().IsZero())
	d.Stop()
	d.Set(at) // after Stop: ignored
	require.True(t, d.When().IsZero())
}
