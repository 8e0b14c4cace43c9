# fish completion for runbook.  The candidates come from the binary itself
# (`runbook __complete WORD...`: subcommands, flags, library runbook names,
# the params and steps of the runbook on the line), read without running
# anything; when it has none the word is a path and fish completes files.
# Installed to /usr/share/fish/vendor_completions.d/runbook.fish.

function __runbook_complete
    set -l tokens (commandline -opc)
    set -l prog $tokens[1]
    set -e tokens[1]
    set -l cur (commandline -ct)
    set -l cands ($prog __complete $tokens "$cur" 2>/dev/null)
    if test (count $cands) -gt 0
        printf '%s\n' $cands
    else
        __fish_complete_path "$cur"
    end
end

complete -c runbook -f -a '(__runbook_complete)'
