# bash completion for runbook.  The candidates come from the binary itself
# (`runbook __complete WORD...`: subcommands, flags, library runbook names,
# the params and steps of the runbook on the line), read without running
# anything; when it has none the word is a path and readline completes files
# (complete -o default).
# Installed to /usr/share/bash-completion/completions/runbook.

_runbook()
{
    local cur=${COMP_WORDS[COMP_CWORD]} i words=() joined
    # bash splits --param key=value at '=' (COMP_WORDBREAKS): glue the pieces
    # back so that runbook sees the words the command will see.
    for ((i = 1; i <= COMP_CWORD; i++)); do
        if [[ ${COMP_WORDS[i]} == "=" || ${COMP_WORDS[i - 1]} == "=" ]] && ((${#words[@]} > 0)) &&
            ((i > 1)); then
            words[${#words[@]} - 1]+=${COMP_WORDS[i]}
        else
            words+=("${COMP_WORDS[i]}")
        fi
    done
    [[ $cur == "=" ]] && cur=""
    COMPREPLY=()
    local line
    while IFS= read -r line; do
        # a candidate with spaces (a step name) must reach the line quoted
        if [[ $line == *[[:space:]]* ]]; then
            printf -v line '%q' "$line"
        fi
        # after key= bash completes only what follows the '='
        [[ ${COMP_WORDS[COMP_CWORD]} == "=" || ${COMP_WORDS[COMP_CWORD - 1]} == "=" ]] &&
            line=${line#*=}
        COMPREPLY+=("$line")
    done < <("${COMP_WORDS[0]}" __complete "${words[@]}" 2>/dev/null)
    # `--param key=` waits for its value: no space after it
    if ((${#COMPREPLY[@]} > 0)) && [[ ${COMPREPLY[0]} == *= ]]; then
        compopt -o nospace 2>/dev/null
    fi
    return 0
}

complete -o default -F _runbook runbook
