# CTest script (tests `version.programs`): each program in PROGRAMS ("|"-separated paths) run
# with --version must exit 0 and print exactly "NAME VERSION\n", NAME being its file name.
string(REPLACE "|" ";" programs "${PROGRAMS}")
set(failures "")
foreach(program IN LISTS programs)
    get_filename_component(name ${program} NAME)
    execute_process(COMMAND ${program} --version
        RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 30)
    if(NOT rc EQUAL 0 OR NOT out STREQUAL "${name} ${VERSION}\n")
        string(APPEND failures "\n  ${program} --version: exit ${rc}, stdout '${out}', stderr '${err}'")
    else()
        message(STATUS "ok: ${out}")
    endif()
endforeach()
if(failures)
    message(FATAL_ERROR "expected '<program> ${VERSION}' from each program:${failures}")
endif()
