// common/state_machine.h — every lifecycle in npa as one kind of table: the
// legal (state, event) -> state arcs, as data, checked at compile time, with
// one machine that decides. Used by the VF lifecycle, the guest lifecycle, the
// vhost-user session, the plug-in device wrapper and the shell's path
// switching, in the manner of VFIO migration v2's device-state arcs.
//
// A machine is described by a traits struct:
//
//   enum class Door : uint8_t { kClosed, kOpen, kLocked };
//   enum class Push : uint8_t { kOpen, kClose, kLock, kUnlock };
//   struct DoorTraits {
//     using State = Door;
//     using Event = Push;
//     static constexpr const char* kName = "door";
//     static constexpr size_t kNumStates = 3, kNumEvents = 4;
//     static const char* StateName(Door s);
//     static const char* EventName(Push e);
//     static constexpr npa::Arc<Door, Push> kArcs[] = {
//         {Door::kClosed, Push::kOpen, Door::kOpen},
//         {Door::kOpen, Push::kClose, Door::kClosed},
//         {Door::kClosed, Push::kLock, Door::kLocked},
//         {Door::kLocked, Push::kUnlock, Door::kClosed},
//     };
//   };
//
//   npa::StateMachine<DoorTraits> door(Door::kClosed);
//   NPA_RETURN_IF_ERROR(door.Fire(Push::kOpen));   // CLOSED -> OPEN
//   absl::Status s = door.Fire(Push::kLock);
//   // s = FailedPrecondition("door: lock is illegal in state OPEN"); still OPEN
//
// When Event is State (a lifecycle whose events are "go to state X", as the
// VF and guest lifecycles are), arcs are written {from, to, to} with
// npa::Edge, and the error reads "<name>: illegal transition A -> B".
//
// Rules:
//   - Fire() is [[nodiscard]] (absl::Status is must-use): an illegal event is
//     an error the caller handles — log it and close the session, refuse the
//     request, or move to the machine's error state. It never goes silent.
//   - (state, event) pairs are unique in kArcs: a duplicate, or a state or
//     event out of range, fails to compile.
//   - ShortestPath() walks the same arcs (BFS), so the route a teardown takes
//     is the table's, not a second copy of it in code.
// Thread safety: none; the owner of a machine serializes access to it.
#ifndef NPA_COMMON_STATE_MACHINE_H_
#define NPA_COMMON_STATE_MACHINE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace npa {

template <typename State, typename Event>
struct Arc {
  State from;
  Event event;
  State to;
};

// An arc of a lifecycle whose events are target states.
template <typename State>
constexpr Arc<State, State> Edge(State from, State to) {
  return {from, to, to};
}

template <typename Traits>
class TransitionTable {
 public:
  using State = typename Traits::State;
  using Event = typename Traits::Event;
  static constexpr size_t kStates = Traits::kNumStates;
  static constexpr size_t kEvents = Traits::kNumEvents;
  static constexpr bool kEventIsTarget = std::is_same_v<State, Event>;

  // The state `e` leads to from `from`, or nullopt if the table has no arc.
  static constexpr std::optional<State> Next(State from, Event e) {
    const size_t f = static_cast<size_t>(from), v = static_cast<size_t>(e);
    if (f >= kStates || v >= kEvents || kMatrix.next[f][v] == kNone) return std::nullopt;
    return static_cast<State>(kMatrix.next[f][v]);
  }
  static constexpr bool Legal(State from, Event e) { return Next(from, e).has_value(); }

  // kFailedPrecondition naming the machine, the event and the state.
  static absl::Status IllegalError(State from, Event e) {
    if constexpr (kEventIsTarget) {
      return absl::FailedPreconditionError(absl::StrCat(Traits::kName, ": illegal transition ",
                                                        Traits::StateName(from), " -> ",
                                                        Traits::StateName(e)));
    } else {
      return absl::FailedPreconditionError(absl::StrCat(Traits::kName, ": ",
                                                        Traits::EventName(e),
                                                        " is illegal in state ",
                                                        Traits::StateName(from)));
    }
  }

  // States visited from `from` (exclusive) to `to` (inclusive) along arcs,
  // fewest arcs first; empty if from == to; kFailedPrecondition if `to` is
  // unreachable. For event machines the events on the way are in *events.
  static absl::Status ShortestPath(State from, State to, std::vector<State>* path,
                                   std::vector<Event>* events = nullptr) {
    path->clear();
    if (events) events->clear();
    const size_t src = static_cast<size_t>(from), dst = static_cast<size_t>(to);
    if (src >= kStates || dst >= kStates)
      return absl::InvalidArgumentError(absl::StrCat(Traits::kName, ": state out of range"));
    if (src == dst) return absl::OkStatus();
    std::array<int, kStates> prev;
    std::array<int, kStates> via;
    prev.fill(-1);
    via.fill(-1);
    std::array<size_t, kStates> queue{};
    size_t head = 0, tail = 0;
    queue[tail++] = src;
    prev[src] = static_cast<int>(src);
    while (head < tail && prev[dst] < 0) {
      const size_t s = queue[head++];
      for (size_t v = 0; v < kEvents; v++) {
        const uint8_t n = kMatrix.next[s][v];
        if (n == kNone || prev[n] >= 0) continue;
        prev[n] = static_cast<int>(s);
        via[n] = static_cast<int>(v);
        queue[tail++] = n;
      }
    }
    if (prev[dst] < 0)
      return absl::FailedPreconditionError(absl::StrCat(Traits::kName, ": no path from ",
                                                        Traits::StateName(from), " to ",
                                                        Traits::StateName(to)));
    for (size_t s = dst; s != src; s = static_cast<size_t>(prev[s])) {
      path->insert(path->begin(), static_cast<State>(s));
      if (events) events->insert(events->begin(), static_cast<Event>(via[s]));
    }
    return absl::OkStatus();
  }

 private:
  static constexpr uint8_t kNone = 0xff;
  static_assert(kStates > 0 && kStates < kNone, "state count out of range");
  static_assert(kEvents > 0, "a machine needs events");
  struct Matrix {
    std::array<std::array<uint8_t, kEvents>, kStates> next;
  };
  static constexpr Matrix Build() {
    Matrix m{};
    for (auto& row : m.next) row.fill(kNone);
    for (const auto& a : Traits::kArcs) {
      const size_t f = static_cast<size_t>(a.from), v = static_cast<size_t>(a.event),
                   t = static_cast<size_t>(a.to);
      // A throw in a constant expression fails the build: the table is wrong.
      if (f >= kStates || t >= kStates || v >= kEvents) throw "arc out of range";
      if (m.next[f][v] != kNone) throw "duplicate (state, event) arc";
      m.next[f][v] = static_cast<uint8_t>(t);
    }
    return m;
  }
  static constexpr Matrix kMatrix = Build();
};

template <typename Traits>
class StateMachine {
 public:
  using Table = TransitionTable<Traits>;
  using State = typename Traits::State;
  using Event = typename Traits::Event;

  constexpr explicit StateMachine(State initial) : state_(initial) {}

  State state() const { return state_; }
  const char* name() const { return Traits::StateName(state_); }
  bool CanFire(Event e) const { return Table::Legal(state_, e); }

  // Moves along the arc (state, e); the error from Table::IllegalError, with
  // the state unchanged, if there is none.
  [[nodiscard]] absl::Status Fire(Event e) {
    const std::optional<State> n = Table::Next(state_, e);
    if (!n) return Table::IllegalError(state_, e);
    state_ = *n;
    return absl::OkStatus();
  }

  // For lifecycles whose events are target states: Fire(to).
  [[nodiscard]] absl::Status Transition(State to)
    requires Table::kEventIsTarget
  {
    return Fire(to);
  }

 private:
  State state_;
};

}  // namespace npa

#endif  // NPA_COMMON_STATE_MACHINE_H_
