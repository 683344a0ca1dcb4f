package v1

import "slices"

// The NVML event types NVIDIA's health.eventTypes names.
const (
	EventTypeXidCriticalError  = "EventTypeXidCriticalError"
	EventTypeDoubleBitEccError = "EventTypeDoubleBitEccError"
	EventTypeSingleBitEccError = "EventTypeSingleBitEccError"
)

// Critical reports whether XID xid makes a GPU unhealthy, as NVIDIA's
// health config decides it: never when health checks are disabled or the
// XID is skipped (skippedXIDs/ignoredXIDs, the application XIDs by
// default); else always when criticalXIDs is unset or "all", and only for
// the XIDs it lists otherwise.
func (h *Health) Critical(xid uint64) bool {
	if h.Disabled || slices.Contains(h.SkippedXIDs, xid) {
		return false
	}
	return h.CriticalXIDs == nil || h.CriticalXIDs.All || slices.Contains(h.CriticalXIDs.XIDs, xid)
}

// Watches reports whether events of the NVML event type (one of the
// EventType* names) are acted on: every type when eventTypes is empty, as
// in NVIDIA's plugin, else the types listed.
func (h *Health) Watches(eventType string) bool {
	return len(h.EventTypes) == 0 || slices.Contains(h.EventTypes, eventType)
}

// Disable applies NVIDIA's DP_DISABLE_HEALTHCHECKS: all turns health
// checks off; XIDs are skipped besides those skipped already.
func (h *Health) Disable(all bool, xids []uint64) {
	if all {
		h.Disabled = true
	}
	for _, x := range xids {
		if !slices.Contains(h.SkippedXIDs, x) {
			h.SkippedXIDs = append(h.SkippedXIDs, x)
		}
	}
	h.IgnoredXIDs = nil // merged into SkippedXIDs by the defaults already
}

// Enable applies NVIDIA's DP_ENABLE_HEALTHCHECKS, which wins over
// DP_DISABLE_HEALTHCHECKS and the skipped XIDs: all makes every XID
// critical (none skipped); listed XIDs are no longer skipped and, when
// health checks were disabled as a whole, become the only critical ones
// (NVIDIA's way to choose exactly the fatal XIDs: DP_DISABLE_HEALTHCHECKS=all
// with DP_ENABLE_HEALTHCHECKS=48,79). An explicit criticalXIDs list gains
// them too.
func (h *Health) Enable(all bool, xids []uint64) {
	if all {
		h.Disabled = false
		h.SkippedXIDs = []uint64{}
		h.IgnoredXIDs = nil
		h.CriticalXIDs = &XIDList{All: true}
		return
	}
	if len(xids) == 0 {
		return
	}
	h.SkippedXIDs = slices.DeleteFunc(h.SkippedXIDs, func(s uint64) bool { return slices.Contains(xids, s) })
	h.IgnoredXIDs = nil
	switch {
	case h.Disabled:
		h.Disabled = false
		h.CriticalXIDs = &XIDList{XIDs: slices.Clone(xids)}
	case h.CriticalXIDs != nil && !h.CriticalXIDs.All:
		for _, x := range xids {
			if !slices.Contains(h.CriticalXIDs.XIDs, x) {
				h.CriticalXIDs.XIDs = append(h.CriticalXIDs.XIDs, x)
			}
		}
	}
}
