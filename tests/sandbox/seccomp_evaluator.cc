// A classic-BPF interpreter for seccomp programs: the instruction set of
// Documentation/networking/filter.rst that seccomp accepts (no packet loads but BPF_ABS words).

#include "seccomp_evaluator.h"

#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/seccomp.h>

#include <cstring>

namespace pio::sandbox::testing {
namespace {

constexpr uint32_t kFail = SECCOMP_RET_KILL_PROCESS;

// The kernel ranks actions by their value as a signed number: lower is more restrictive.
int32_t rank(uint32_t action) { return static_cast<int32_t>(action & SECCOMP_RET_ACTION_FULL); }

}  // namespace

uint32_t evaluate_seccomp(const std::vector<sock_filter>& program, const SyscallCall& call) {
  seccomp_data data{};
  data.nr = call.nr;
  data.arch = AUDIT_ARCH_X86_64;
  for (size_t i = 0; i < 6; ++i) data.args[i] = call.args[i];
  unsigned char bytes[sizeof data];
  std::memcpy(bytes, &data, sizeof data);

  uint32_t a = 0, x = 0;
  uint32_t mem[BPF_MEMWORDS] = {};
  for (size_t pc = 0; pc < program.size(); ++pc) {
    const sock_filter& in = program[pc];
    const uint32_t k = in.k;
    switch (BPF_CLASS(in.code)) {
      case BPF_LD:
      case BPF_LDX: {
        uint32_t value = 0;
        if (BPF_MODE(in.code) == BPF_ABS && BPF_SIZE(in.code) == BPF_W) {
          if (k % 4 != 0 || k + 4 > sizeof data) {
            ADD_FAILURE() << "BPF load outside seccomp_data at " << k;
            return kFail;
          }
          std::memcpy(&value, bytes + k, 4);
        } else if (BPF_MODE(in.code) == BPF_IMM) {
          value = k;
        } else if (BPF_MODE(in.code) == BPF_MEM && k < BPF_MEMWORDS) {
          value = mem[k];
        } else if (BPF_MODE(in.code) == BPF_LEN) {
          value = sizeof data;
        } else {
          ADD_FAILURE() << "BPF load mode " << in.code << " at " << pc;
          return kFail;
        }
        (BPF_CLASS(in.code) == BPF_LD ? a : x) = value;
        break;
      }
      case BPF_ST:
      case BPF_STX:
        if (k >= BPF_MEMWORDS) {
          ADD_FAILURE() << "BPF store to " << k;
          return kFail;
        }
        mem[k] = BPF_CLASS(in.code) == BPF_ST ? a : x;
        break;
      case BPF_ALU: {
        const uint32_t operand = BPF_SRC(in.code) == BPF_X ? x : k;
        switch (BPF_OP(in.code)) {
          case BPF_ADD:
            a += operand;
            break;
          case BPF_SUB:
            a -= operand;
            break;
          case BPF_MUL:
            a *= operand;
            break;
          case BPF_DIV:
            a = operand == 0 ? 0 : a / operand;
            break;
          case BPF_MOD:
            a = operand == 0 ? 0 : a % operand;
            break;
          case BPF_AND:
            a &= operand;
            break;
          case BPF_OR:
            a |= operand;
            break;
          case BPF_XOR:
            a ^= operand;
            break;
          case BPF_LSH:
            a = operand < 32 ? a << operand : 0;
            break;
          case BPF_RSH:
            a = operand < 32 ? a >> operand : 0;
            break;
          case BPF_NEG:
            a = -a;
            break;
          default:
            ADD_FAILURE() << "BPF ALU op " << in.code << " at " << pc;
            return kFail;
        }
        break;
      }
      case BPF_JMP: {
        if (BPF_OP(in.code) == BPF_JA) {
          pc += k;
          break;
        }
        const uint32_t operand = BPF_SRC(in.code) == BPF_X ? x : k;
        bool taken = false;
        switch (BPF_OP(in.code)) {
          case BPF_JEQ:
            taken = a == operand;
            break;
          case BPF_JGT:
            taken = a > operand;
            break;
          case BPF_JGE:
            taken = a >= operand;
            break;
          case BPF_JSET:
            taken = (a & operand) != 0;
            break;
          default:
            ADD_FAILURE() << "BPF jump op " << in.code << " at " << pc;
            return kFail;
        }
        pc += taken ? in.jt : in.jf;
        break;
      }
      case BPF_RET:
        return BPF_RVAL(in.code) == BPF_A ? a : k;
      case BPF_MISC:
        if (BPF_MISCOP(in.code) == BPF_TAX) {
          x = a;
        } else {
          a = x;
        }
        break;
      default:
        ADD_FAILURE() << "BPF class " << in.code << " at " << pc;
        return kFail;
    }
  }
  ADD_FAILURE() << "the BPF program ran off its end";
  return kFail;
}

uint32_t verdict_of(const std::vector<const std::vector<sock_filter>*>& programs,
                    const SyscallCall& call) {
  uint32_t verdict = SECCOMP_RET_ALLOW;
  for (const auto* program : programs) {
    if (program->empty()) continue;
    uint32_t v = evaluate_seccomp(*program, call);
    if (rank(v) < rank(verdict)) verdict = v;
  }
  return verdict;
}

bool allows(uint32_t verdict) { return (verdict & SECCOMP_RET_ACTION_FULL) == SECCOMP_RET_ALLOW; }

}  // namespace pio::sandbox::testing
