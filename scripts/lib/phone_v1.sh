# Sourced by the experiment scripts whose reports were made on the first phone-unit default:
# V1 is where scripts/restore_baselines.sh puts it (tokenizer/, lm/, vocoder/), so that a switch
# of the bundled phone-k100 / phone-lm leaves what they rebuild as it was.
V1=outputs/baselines/phone-v1
need_v1() {  # PATH...: restore phone-v1 from git history if any PATH lies in it and is missing
  local p
  for p in "$@"; do
    case "$p" in
      "$V1"/*) [ -e "$p" ] || { bash scripts/restore_baselines.sh > /dev/null; return; } ;;
    esac
  done
}
