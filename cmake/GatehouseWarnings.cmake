# gatehouse_set_warnings(target): the project's warning set, as errors with GATEHOUSE_WERROR.
function(gatehouse_set_warnings target)
    target_compile_options(${target} PRIVATE
        -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
        -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Woverloaded-virtual
        -Wnull-dereference -Wimplicit-fallthrough)
    if(GATEHOUSE_WERROR)
        target_compile_options(${target} PRIVATE -Werror)
    endif()
endfunction()
